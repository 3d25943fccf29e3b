/*
 * fake_nvml.c - a simulated NVIDIA GPU at the NVML library boundary.
 *
 * Build:  cc -shared -fPIC -O2 -Wall -Wl,-soname,libnvidia-ml.so.1 \
 *            -o libnvidia-ml.so.1 fake_nvml.c -lm
 * The unmodified pynvml (nvidia-ml-py) and CodeCarbon load it as
 * "libnvidia-ml.so.1": preload it with RTLD_GLOBAL in the current process
 * (dlopen then matches the SONAME), or put its directory on LD_LIBRARY_PATH
 * for child processes.  carbon_testing/fake_nvml/__init__.py does both.
 *
 * CONFIGURATION: environment variable FAKE_NVML_CONFIG
 *   unset            -> no driver: every call returns DRIVER_NOT_LOADED (9)
 *   "" or text       -> the configuration text itself
 *   "@/path/file"    -> the text is read from that file
 * Text: entries separated by newlines or ';', each "key=value"; whitespace
 * around tokens is ignored; '#' starts a comment up to the end of the line
 * (so ';' and '#' cannot appear in values).  A global key sets a value for
 * every GPU; "gpuN.key=value" overrides it for GPU N (0-based NVML index),
 * whatever the order of the entries.  Unknown keys / bad values: one
 * warning on stderr per parse, otherwise ignored.
 *   count=N             number of GPUs, 0..16 (default 1)            [global]
 *   unavailable=1       every call returns DRIVER_NOT_LOADED (9)     [global]
 *   name=TEXT           default "NVIDIA H200"
 *   uuid=TEXT           default GPU-fa4e000N-0000-4000-8000-00000000000N
 *   pci=DDDDDDDD:BB:DD.F  default 00000000:BB:00.0, BB = 0x10 + N*0x10
 *   cc=MAJOR.MINOR      CUDA compute capability (default 9.0)
 *   counter=1|0         energy counter supported (default 1); 0 -> the
 *                       counter returns NOT_SUPPORTED (3), like pre-Volta
 *   counter_base_mj=N   counter value at trace time 0 (default 1000000)
 *   instant_power=1|0   nvmlDeviceGetFieldValues answers the instant power
 *                       field NVML_FI_DEV_POWER_INSTANT (186) with the trace
 *                       power in mW, unsigned int (default 1); 0 -> that
 *                       field's nvmlReturn is NOT_SUPPORTED (3).  Every other
 *                       field id, and any field on a MIG handle, is
 *                       NOT_SUPPORTED; the call itself returns SUCCESS
 *   power_period_s=S    the power sensor's update period (default 0: a new
 *                       value at every read): a reading at t holds the mean
 *                       power over the sensor's last period, [u - S, u] with
 *                       u = S * floor(t / S), as a sensor that averages
 *                       between its updates
 *   power_avg_s=S       nvmlDeviceGetPowerUsage is the mean power over the
 *                       last S seconds, [u - S, u] (default 0: the instant
 *                       reading; Ampere and newer report a 1 s average,
 *                       power_avg_s=1); the instant field is unaffected
 *   power=SPEC          power trace in watts as a function of trace time t:
 *       const:W                 constant (default const:100)
 *       square:LOW:HIGH:PERIOD  HIGH while (t mod PERIOD) < PERIOD/2, else
 *                               LOW; t mod PERIOD is taken in [0, PERIOD)
 *       file:/path              lines "t_s watts" (comma also accepted, '#'
 *                               comments): piecewise constant, value holds
 *                               from its t to the next t; before the first
 *                               point the first value, after the last the
 *                               last value
 *   epoch=S             trace time t = CLOCK_MONOTONIC seconds - S
 *                       (default 0: every process, and Python's
 *                       time.monotonic(), agree on the trace)
 *   power_limit_w=W     enforced / management power limit (default 700)
 *   memory_mib=N        total memory (default 143771 MiB, an H200)
 *   mig=K               MIG mode on with K MIG devices (0..7, default 0)
 *   mig_slices=A,B,...  compute slices of each MIG device (default 1 each), in
 *                       nvmlDeviceGetAttributes_v2's gpuInstanceSliceCount
 *   lost_at=T           from trace time T on, calls on this GPU (and its MIG
 *                       devices) return GPU_IS_LOST (15)
 *   reset_at=T          counter restarts at T: for t >= T it reads
 *                       floor(1000 * integral_T^t P) mJ, without the base
 *   proc_util=/path     per-process utilisation: the file (read on every
 *                       nvmlDeviceGetProcessUtilization call) holds lines
 *                       "PID SM_PERCENT"; each is one sample stamped now.
 *                       Unset, or a file with no line: NOT_FOUND (6), as
 *                       NVML answers when it has no sample (no process)
 * Semantics: counter (mJ) = counter_base_mj + floor(1000 * integral_0^t P)
 * for t < reset_at; power (mW) = round(1000 * P(t)) (or the means above);
 * utilisation gpu % =
 * round(100 * P / limit).  Integrals are closed-form doubles.  Power and
 * energy on a MIG handle return NOT_SUPPORTED, as real NVML does.
 * The configuration is re-parsed whenever the variable's string changes
 * (checked on every call; the content of an @file is read only then).
 * Handles are pointers into static arrays and stay valid; one whose index is
 * >= the current count returns INVALID_ARGUMENT (2).
 * Every call takes one global mutex, so a sampling thread and the main
 * thread may call concurrently.
 * Test helpers (exported): fake_nvml_true_energy_j(index, t0, t1) = integral
 * of P in joules between two CLOCK_MONOTONIC instants (ignores lost/reset),
 * fake_nvml_power_w(index, t), fake_nvml_counter_mj(index, t) (-1 when the
 * counter is unsupported); NAN for an index >= count.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
    OK = 0, E_UNINIT = 1, E_INVAL = 2, E_NOTSUP = 3, E_NOTFOUND = 6,
    E_SIZE = 7, E_NODRIVER = 9, E_LOST = 15, E_VERSION = 25,
};
#define MAXGPU 16
#define MAXMIG 7
#define EXPORT __attribute__((visibility("default")))

typedef struct { unsigned gpu; int mig; } fake_dev;  /* mig -1: a full GPU */
typedef fake_dev *nvmlDevice_t;

enum { TR_CONST, TR_SQUARE, TR_FILE };
typedef struct {
    int kind;
    double a, b, c;          /* const: a=W; square: a=LOW b=HIGH c=PERIOD */
    int n;                   /* file: points, times, watts, cumulative J */
    double *t, *w, *cum;
} trace_t;

typedef struct {
    char name[96], uuid[96], pci[32], power[512], proc_util[512];
    int cc_major, cc_minor, counter, mig, instant;
    unsigned mig_slices[MAXMIG];
    unsigned long long base_mj, mem_mib;
    double epoch, lost_at, reset_at, limit_w, period_s, avg_s;
    trace_t tr;
} gpu_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_raw;           /* last parsed env string, NULL when unset */
static int g_parsed;          /* 0 until the first parse */
static int g_unavailable;
static unsigned g_count;
static gpu_t g_gpu[MAXGPU];
static int g_init;            /* nvmlInit refcount */
static fake_dev g_gpu_h[MAXGPU];
static fake_dev g_mig_h[MAXGPU][MAXMIG];

/* ------------------------------------------------------------ traces --- */

static double tr_power(const trace_t *tr, double t)
{
    if (tr->kind == TR_CONST) return tr->a;
    if (tr->kind == TR_SQUARE) {
        double r = t - floor(t / tr->c) * tr->c;
        return r < tr->c / 2 ? tr->b : tr->a;
    }
    if (t < tr->t[0]) return tr->w[0];
    int lo = 0, hi = tr->n - 1;      /* largest k with t[k] <= t */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (tr->t[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return tr->w[lo];
}

/* antiderivative of the power: integral_{ref}^{t} P, closed form */
static double tr_integral(const trace_t *tr, double t)
{
    if (tr->kind == TR_CONST) return tr->a * t;
    if (tr->kind == TR_SQUARE) {
        double p = tr->c, h = p / 2, n = floor(t / p), r = t - n * p;
        return n * (tr->a + tr->b) * h
               + (r < h ? tr->b * r : tr->b * h + tr->a * (r - h));
    }
    if (t < tr->t[0]) return tr->w[0] * (t - tr->t[0]);
    int lo = 0, hi = tr->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (tr->t[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return tr->cum[lo] + tr->w[lo] * (t - tr->t[lo]);
}

static void tr_free(trace_t *tr)
{
    free(tr->t); free(tr->w); free(tr->cum);
    memset(tr, 0, sizeof *tr);
}

static int cmp_pt(const void *x, const void *y)
{
    double a = ((const double *)x)[0], b = ((const double *)y)[0];
    return (a > b) - (a < b);
}

static int tr_load_file(trace_t *tr, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    int n = 0, cap = 0;
    double *pts = NULL;                           /* interleaved (t, w) */
    while (fgets(line, sizeof line, f)) {
        char *h = strchr(line, '#');
        if (h) *h = 0;
        for (char *c = line; *c; c++) if (*c == ',') *c = ' ';
        double t, w;
        if (sscanf(line, "%lf %lf", &t, &w) != 2) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            double *np = realloc(pts, 2 * cap * sizeof *pts);
            if (!np) { free(pts); fclose(f); return -1; }
            pts = np;
        }
        pts[2 * n] = t; pts[2 * n + 1] = w; n++;
    }
    fclose(f);
    if (n == 0) { free(pts); return -1; }
    qsort(pts, n, 2 * sizeof *pts, cmp_pt);
    tr->kind = TR_FILE; tr->n = n;
    tr->t = malloc(n * sizeof(double));
    tr->w = malloc(n * sizeof(double));
    tr->cum = malloc(n * sizeof(double));
    if (!tr->t || !tr->w || !tr->cum) { free(pts); tr_free(tr); return -1; }
    for (int i = 0; i < n; i++) {
        tr->t[i] = pts[2 * i]; tr->w[i] = pts[2 * i + 1];
        tr->cum[i] = i ? tr->cum[i - 1] + tr->w[i - 1] * (tr->t[i] - tr->t[i - 1]) : 0;
    }
    free(pts);
    return 0;
}

static int tr_parse(trace_t *tr, const char *spec)
{
    memset(tr, 0, sizeof *tr);
    char extra;
    if (sscanf(spec, "const:%lf %c", &tr->a, &extra) == 1) {
        tr->kind = TR_CONST;
        return 0;
    }
    if (sscanf(spec, "square:%lf:%lf:%lf %c", &tr->a, &tr->b, &tr->c, &extra) == 3
        && tr->c > 0) {
        tr->kind = TR_SQUARE;
        return 0;
    }
    if (strncmp(spec, "file:", 5) == 0) return tr_load_file(tr, spec + 5);
    return -1;
}

/* ------------------------------------------------------------ config --- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static void gpu_defaults(gpu_t *g, unsigned i)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "NVIDIA H200");
    snprintf(g->uuid, sizeof g->uuid, "GPU-%08x-0000-4000-8000-%012x", 0xfa4e0000u + i, i);
    snprintf(g->pci, sizeof g->pci, "00000000:%02X:00.0", 0x10 + i * 0x10);
    snprintf(g->power, sizeof g->power, "const:100");
    g->cc_major = 9; g->cc_minor = 0; g->counter = 1; g->mig = 0; g->instant = 1;
    g->base_mj = 1000000ULL; g->mem_mib = 143771ULL;
    g->epoch = 0; g->limit_w = 700;
    g->lost_at = INFINITY; g->reset_at = INFINITY;
    for (int k = 0; k < MAXMIG; k++) g->mig_slices[k] = 1;
}

static int parse_num(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *trim(end)) return -1;
    *out = d;
    return 0;
}

/* 0 ok, -1 unknown key, -2 bad value */
static int gpu_apply(gpu_t *g, const char *k, const char *v)
{
    double d;
    int ma, mi;
    char extra;
#define NUM(key, expr) if (!strcmp(k, key)) { if (parse_num(v, &d)) return -2; expr; return 0; }
#define STR(key, field) if (!strcmp(k, key)) { snprintf(field, sizeof field, "%s", v); return 0; }
    STR("name", g->name)
    STR("uuid", g->uuid)
    STR("pci", g->pci)
    STR("power", g->power)
    STR("proc_util", g->proc_util)
    NUM("counter", g->counter = d != 0)
    NUM("instant_power", g->instant = d != 0)
    NUM("counter_base_mj", if (d < 0) return -2; g->base_mj = (unsigned long long)d)
    NUM("epoch", g->epoch = d)
    NUM("power_period_s", if (d < 0) return -2; g->period_s = d)
    NUM("power_avg_s", if (d < 0) return -2; g->avg_s = d)
    NUM("power_limit_w", if (d <= 0) return -2; g->limit_w = d)
    NUM("memory_mib", if (d < 1) return -2; g->mem_mib = (unsigned long long)d)
    NUM("mig", if (d < 0 || d > MAXMIG) return -2; g->mig = (int)d)
    NUM("lost_at", g->lost_at = d)
    NUM("reset_at", g->reset_at = d)
    if (!strcmp(k, "mig_slices")) {
        const char *p = v;
        for (int n = 0; n < MAXMIG && *p; n++) {
            char *end;
            long slices = strtol(p, &end, 10);
            if (end == p || slices < 1 || slices > 7) return -2;
            g->mig_slices[n] = (unsigned)slices;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') return -2;
        }
        return 0;
    }
    if (!strcmp(k, "cc")) {
        if (sscanf(v, "%d.%d %c", &ma, &mi, &extra) != 2) return -2;
        g->cc_major = ma; g->cc_minor = mi;
        return 0;
    }
    return -1;
#undef NUM
#undef STR
}

static void warn(const char *what, const char *k, const char *v)
{
    fprintf(stderr, "fake_nvml: warning: %s '%s=%s' in FAKE_NVML_CONFIG, ignored\n", what, k, v);
}

static void parse_config(const char *env)
{
    for (int i = 0; i < MAXGPU; i++) tr_free(&g_gpu[i].tr);
    g_unavailable = 0;
    g_count = 1;
    if (!env) { g_unavailable = 1; g_count = 0; return; }

    char *text = NULL;
    if (env[0] == '@') {
        FILE *f = fopen(env + 1, "r");
        if (f) {
            size_t cap = 4096, len = 0, r;
            text = malloc(cap);
            while (text && (r = fread(text + len, 1, cap - len - 1, f)) > 0) {
                len += r;
                if (len + 1 == cap) { char *t = realloc(text, cap *= 2); if (!t) break; text = t; }
            }
            if (text) text[len] = 0;
            fclose(f);
        }
        if (!text) fprintf(stderr, "fake_nvml: warning: cannot read config file %s\n", env + 1);
    } else {
        text = strdup(env);
    }
    if (!text) text = strdup("");
    if (!text) return;

    /* split into (gpu index or -1, key, value) entries */
    enum { MAXENT = 1024 };
    static struct { int gpu; char *k, *v; } ent[MAXENT];
    int n = 0;
    char *save_line, *save_ent;
    for (char *line = strtok_r(text, "\n", &save_line); line; line = strtok_r(NULL, "\n", &save_line)) {
        char *h = strchr(line, '#');
        if (h) *h = 0;
        for (char *e = strtok_r(line, ";", &save_ent); e; e = strtok_r(NULL, ";", &save_ent)) {
            char *eq = strchr(e, '=');
            char *k = trim(e);
            if (!*k) continue;
            if (!eq) { warn("entry without '='", k, ""); continue; }
            *eq = 0;
            k = trim(k);
            char *v = trim(eq + 1);
            int gi = -1, used = 0;
            if (sscanf(k, "gpu%d.%n", &gi, &used) == 1 && used > 0) {
                if (gi < 0 || gi >= MAXGPU) { warn("bad GPU index", k, v); continue; }
                k += used;
            } else {
                gi = -1;
            }
            if (n < MAXENT) { ent[n].gpu = gi; ent[n].k = k; ent[n].v = v; n++; }
        }
    }
    /* global-only keys, then globals, then per-GPU overrides */
    for (int i = 0; i < MAXGPU; i++) gpu_defaults(&g_gpu[i], i);
    for (int i = 0; i < n; i++) {
        double d;
        int is_count = !strcmp(ent[i].k, "count"), is_unav = !strcmp(ent[i].k, "unavailable");
        if (!is_count && !is_unav) continue;
        if (ent[i].gpu >= 0) warn("global-only key", ent[i].k, ent[i].v);
        else if (parse_num(ent[i].v, &d) || d < 0 || (is_count && d > MAXGPU))
            warn("bad value", ent[i].k, ent[i].v);
        else if (is_count) g_count = (unsigned)d;
        else g_unavailable = d != 0;
        ent[i].k = NULL;
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (!ent[i].k || (pass == 0) != (ent[i].gpu < 0)) continue;
            for (int gi = 0; gi < MAXGPU; gi++) {
                if (pass == 1 && gi != ent[i].gpu) continue;
                int r = gpu_apply(&g_gpu[gi], ent[i].k, ent[i].v);
                if (r) { warn(r == -1 ? "unknown key" : "bad value", ent[i].k, ent[i].v); break; }
            }
        }
    for (unsigned i = 0; i < g_count; i++)
        if (tr_parse(&g_gpu[i].tr, g_gpu[i].power)) {
            fprintf(stderr, "fake_nvml: warning: bad power trace '%s' for GPU %u, using const:100\n",
                    g_gpu[i].power, i);
            tr_parse(&g_gpu[i].tr, "const:100");
        }
    free(text);
}

/* called with g_mu held, at the start of every entry point */
static void refresh(void)
{
    const char *env = getenv("FAKE_NVML_CONFIG");
    if (g_parsed && ((!env && !g_raw) || (env && g_raw && !strcmp(env, g_raw)))) return;
    free(g_raw);
    g_raw = env ? strdup(env) : NULL;
    parse_config(env);
    if (!g_parsed) {
        for (int i = 0; i < MAXGPU; i++) {
            g_gpu_h[i].gpu = i; g_gpu_h[i].mig = -1;
            for (int k = 0; k < MAXMIG; k++) { g_mig_h[i][k].gpu = i; g_mig_h[i][k].mig = k; }
        }
        g_parsed = 1;
    }
}

/* ------------------------------------------------------------ helpers -- */

static double now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double trace_time(const gpu_t *g) { return now_monotonic() - g->epoch; }

static nvmlReturn_t check_state(void)
{
    if (g_unavailable) return E_NODRIVER;
    return g_init > 0 ? OK : E_UNINIT;
}

/* validate a handle; *g gets its GPU, *mig its MIG index (-1: full GPU) */
static nvmlReturn_t check_dev(nvmlDevice_t d, gpu_t **g, int *mig)
{
    nvmlReturn_t r = check_state();
    if (r) return r;
    uintptr_t p = (uintptr_t)d, g0 = (uintptr_t)g_gpu_h, m0 = (uintptr_t)g_mig_h;
    if (p >= g0 && p < g0 + sizeof g_gpu_h) {
        if ((p - g0) % sizeof(fake_dev)) return E_INVAL;
    } else if (p >= m0 && p < m0 + sizeof g_mig_h) {
        if ((p - m0) % sizeof(fake_dev) || d->mig >= g_gpu[d->gpu].mig) return E_INVAL;
    } else {
        return E_INVAL;
    }
    if (d->gpu >= g_count) return E_INVAL;
    *g = &g_gpu[d->gpu];
    *mig = d->mig;
    if (trace_time(*g) >= (*g)->lost_at) return E_LOST;
    return OK;
}

static nvmlReturn_t copy_str(char *buf, unsigned len, const char *s)
{
    if (!buf) return E_INVAL;
    if (strlen(s) + 1 > len) return E_SIZE;
    memcpy(buf, s, strlen(s) + 1);
    return OK;
}

static void mig_uuid(char *buf, size_t len, unsigned gpu, int mig)
{
    snprintf(buf, len, "MIG-%08x-0000-4000-8000-%012x", 0x3f1c0000u + gpu, (unsigned)mig);
}

static double counter_mj(const gpu_t *g, double t)
{
    double v;
    if (t >= g->reset_at) v = floor(1000.0 * (tr_integral(&g->tr, t) - tr_integral(&g->tr, g->reset_at)));
    else v = (double)g->base_mj + floor(1000.0 * (tr_integral(&g->tr, t) - tr_integral(&g->tr, 0)));
    return v < 0 ? 0 : v;
}

#define LOCKED(expr) do { pthread_mutex_lock(&g_mu); refresh(); \
    nvmlReturn_t r_ = (expr); pthread_mutex_unlock(&g_mu); return r_; } while (0)
#define DEV(d) gpu_t *g = NULL; int mig = -1; nvmlReturn_t r = check_dev(d, &g, &mig); \
    (void)g; (void)mig; if (r) return r
#define NOPTR(p) if (!(p)) return E_INVAL

/* ------------------------------------------------------ implementations - */

static nvmlReturn_t do_init(void)
{
    if (g_unavailable) return E_NODRIVER;
    g_init++;
    return OK;
}

static nvmlReturn_t do_shutdown(void)
{
    nvmlReturn_t r = check_state();
    if (r) return r;
    g_init--;
    return OK;
}

static nvmlReturn_t do_sys_str(char *buf, unsigned len, const char *s)
{
    nvmlReturn_t r = check_state();
    return r ? r : copy_str(buf, len, s);
}

static nvmlReturn_t do_sys_cuda(int *v)
{
    nvmlReturn_t r = check_state();
    if (r) return r;
    NOPTR(v);
    *v = 12060;
    return OK;
}

static nvmlReturn_t do_count(unsigned *c)
{
    nvmlReturn_t r = check_state();
    if (r) return r;
    NOPTR(c);
    *c = g_count;
    return OK;
}

static nvmlReturn_t do_by_index(unsigned i, nvmlDevice_t *d)
{
    nvmlReturn_t r = check_state();
    if (r) return r;
    NOPTR(d);
    if (i >= g_count) return E_INVAL;
    if (trace_time(&g_gpu[i]) >= g_gpu[i].lost_at) return E_LOST;
    *d = &g_gpu_h[i];
    return OK;
}

static nvmlReturn_t do_by_uuid(const char *uuid, nvmlDevice_t *d)
{
    nvmlReturn_t r = check_state();
    if (r) return r;
    NOPTR(uuid); NOPTR(d);
    char buf[96];
    for (unsigned i = 0; i < g_count; i++) {
        if (!strcmp(uuid, g_gpu[i].uuid)) { *d = &g_gpu_h[i]; return OK; }
        for (int k = 0; k < g_gpu[i].mig; k++) {
            mig_uuid(buf, sizeof buf, i, k);
            if (!strcmp(uuid, buf)) { *d = &g_mig_h[i][k]; return OK; }
        }
    }
    return E_NOTFOUND;
}

static nvmlReturn_t do_name(nvmlDevice_t d, char *buf, unsigned len)
{
    DEV(d);
    char name[128];
    if (mig >= 0) snprintf(name, sizeof name, "%s MIG 1g.18gb", g->name);
    else snprintf(name, sizeof name, "%s", g->name);
    return copy_str(buf, len, name);
}

static nvmlReturn_t do_uuid(nvmlDevice_t d, char *buf, unsigned len)
{
    DEV(d);
    char u[96];
    if (mig >= 0) mig_uuid(u, sizeof u, d->gpu, mig);
    else snprintf(u, sizeof u, "%s", g->uuid);
    return copy_str(buf, len, u);
}

typedef struct {
    char busIdLegacy[16];
    unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned version, domain, bus, device, pciDeviceId, pciSubSystemId, baseClass, subClass;
    char busId[32];
} nvmlPciInfoExt_t;

static void pci_parse(const gpu_t *g, unsigned *dom, unsigned *bus, unsigned *dev)
{
    unsigned fn = 0;
    *dom = *bus = *dev = 0;
    sscanf(g->pci, "%x:%x:%x.%x", dom, bus, dev, &fn);
}

static nvmlReturn_t do_pci(nvmlDevice_t d, nvmlPciInfo_t *p)
{
    DEV(d);
    NOPTR(p);
    if (mig >= 0) return E_NOTSUP;
    memset(p, 0, sizeof *p);
    pci_parse(g, &p->domain, &p->bus, &p->device);
    p->pciDeviceId = 0x233510DE;
    p->pciSubSystemId = 0x18BE10DE;
    snprintf(p->busId, sizeof p->busId, "%s", g->pci);
    snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "%04X:%02X:%02X.0", p->domain & 0xffff, p->bus, p->device);
    return OK;
}

static nvmlReturn_t do_pci_ext(nvmlDevice_t d, nvmlPciInfoExt_t *p)
{
    DEV(d);
    NOPTR(p);
    if (mig >= 0) return E_NOTSUP;
    if (p->version != ((1u << 24) | sizeof *p)) return E_VERSION;
    pci_parse(g, &p->domain, &p->bus, &p->device);
    p->pciDeviceId = 0x233510DE;
    p->pciSubSystemId = 0x18BE10DE;
    p->baseClass = 3; p->subClass = 2;   /* 3D controller */
    snprintf(p->busId, sizeof p->busId, "%s", g->pci);
    return OK;
}

static nvmlReturn_t do_cc(nvmlDevice_t d, int *ma, int *mi)
{
    DEV(d);
    NOPTR(ma); NOPTR(mi);
    *ma = g->cc_major; *mi = g->cc_minor;
    return OK;
}

static nvmlReturn_t do_energy(nvmlDevice_t d, unsigned long long *mj)
{
    DEV(d);
    NOPTR(mj);
    if (mig >= 0 || !g->counter) return E_NOTSUP;
    *mj = (unsigned long long)counter_mj(g, trace_time(g));
    return OK;
}

/* the sensor's reading (mW) at trace time t: the mean over [u - window, u], u the sensor's last update; the
 * power at u where window is 0 */
static unsigned sensor_mw(const gpu_t *g, double t, double window)
{
    double u = g->period_s > 0 ? g->period_s * floor(t / g->period_s) : t;
    double w = window > 0 ? (tr_integral(&g->tr, u) - tr_integral(&g->tr, u - window)) / window : tr_power(&g->tr, u);
    return w > 0 ? (unsigned)llround(1000.0 * w) : 0;
}

static nvmlReturn_t do_power(nvmlDevice_t d, unsigned *mw)
{
    DEV(d);
    NOPTR(mw);
    if (mig >= 0) return E_NOTSUP;
    *mw = sensor_mw(g, trace_time(g), g->avg_s > 0 ? g->avg_s : g->period_s);
    return OK;
}

/* nvmlFieldValue_t: 40 bytes, as nvml.h (and pynvml's c_nvmlFieldValue_t) lay it out */
typedef union {
    double dVal; unsigned uiVal; unsigned long ulVal; unsigned long long ullVal;
    long long sllVal; int siVal; unsigned short usVal;
} nvmlValue_t;
typedef struct {
    unsigned fieldId, scopeId;
    long long timestamp, latencyUsec;
    unsigned valueType, nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;
enum { FI_DEV_POWER_INSTANT = 186, VALUE_TYPE_UNSIGNED_INT = 1 };

static nvmlReturn_t do_field_values(nvmlDevice_t d, int count, nvmlFieldValue_t *v)
{
    DEV(d);
    NOPTR(v);
    if (count < 0) return E_INVAL;
    double t = trace_time(g);
    for (int i = 0; i < count; i++) {
        v[i].timestamp = (long long)(now_monotonic() * 1e6);
        v[i].latencyUsec = 0;
        memset(&v[i].value, 0, sizeof v[i].value);
        if (v[i].fieldId == FI_DEV_POWER_INSTANT && mig < 0 && g->instant) {
            v[i].valueType = VALUE_TYPE_UNSIGNED_INT;
            v[i].value.uiVal = sensor_mw(g, t, g->period_s);
            v[i].nvmlReturn = OK;
        } else {
            v[i].valueType = VALUE_TYPE_UNSIGNED_INT;
            v[i].nvmlReturn = E_NOTSUP;
        }
    }
    return OK;
}

static nvmlReturn_t do_limit(nvmlDevice_t d, unsigned *mw)
{
    DEV(d);
    NOPTR(mw);
    if (mig >= 0) return E_NOTSUP;
    *mw = (unsigned)llround(1000.0 * g->limit_w);
    return OK;
}

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;

static void mem_of(const gpu_t *g, int mig, unsigned long long *total, unsigned long long *used)
{
    *total = (mig >= 0 ? g->mem_mib / 8 : g->mem_mib) << 20;
    *used = 512ULL << 20;
}

static nvmlReturn_t do_mem(nvmlDevice_t d, nvmlMemory_t *m)
{
    DEV(d);
    NOPTR(m);
    mem_of(g, mig, &m->total, &m->used);
    m->free = m->total - m->used;
    return OK;
}

static nvmlReturn_t do_mem2(nvmlDevice_t d, nvmlMemory_v2_t *m)
{
    DEV(d);
    NOPTR(m);
    if (m->version != ((2u << 24) | sizeof *m)) return E_VERSION;
    mem_of(g, mig, &m->total, &m->used);
    m->reserved = 0;
    m->free = m->total - m->used;
    return OK;
}

static nvmlReturn_t do_temp(nvmlDevice_t d, int sensor, unsigned *t)
{
    DEV(d);
    NOPTR(t);
    if (mig >= 0) return E_NOTSUP;
    if (sensor != 0) return E_INVAL;
    *t = 45;
    return OK;
}

typedef struct { unsigned gpu, memory; } nvmlUtilization_t;

static nvmlReturn_t do_util(nvmlDevice_t d, nvmlUtilization_t *u)
{
    DEV(d);
    NOPTR(u);
    if (mig >= 0) return E_NOTSUP;
    double pct = 100.0 * tr_power(&g->tr, trace_time(g)) / g->limit_w;
    pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
    u->gpu = (unsigned)llround(pct);
    u->memory = u->gpu / 2;
    return OK;
}

static nvmlReturn_t do_compute_mode(nvmlDevice_t d, int *mode)
{
    DEV(d);
    NOPTR(mode);
    *mode = 0;
    return OK;
}

static nvmlReturn_t do_procs(nvmlDevice_t d, unsigned *count, void *infos)
{
    DEV(d);
    NOPTR(count);
    (void)infos;
    *count = 0;
    return OK;
}

typedef struct {
    unsigned pid;
    unsigned long long timeStamp;
    unsigned smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

static nvmlReturn_t do_proc_util(nvmlDevice_t d, nvmlProcessUtilizationSample_t *out, unsigned *count,
                                 unsigned long long since)
{
    DEV(d);
    NOPTR(count);
    (void)since;
    if (!g->proc_util[0]) return E_NOTFOUND;
    FILE *f = fopen(g->proc_util, "r");
    if (!f) return E_NOTFOUND;
    nvmlProcessUtilizationSample_t rows[64];
    unsigned n = 0, pid, sm;
    unsigned long long stamp = (unsigned long long)(now_monotonic() * 1e6);
    while (n < 64 && fscanf(f, "%u %u", &pid, &sm) == 2) {
        rows[n].pid = pid; rows[n].timeStamp = stamp; rows[n].smUtil = sm > 100 ? 100 : sm;
        rows[n].memUtil = rows[n].smUtil / 2; rows[n].encUtil = rows[n].decUtil = 0;
        n++;
    }
    fclose(f);
    if (n == 0) return E_NOTFOUND;
    if (out == NULL || *count < n) {
        *count = n;
        return E_SIZE;
    }
    memcpy(out, rows, n * sizeof rows[0]);
    *count = n;
    return OK;
}

typedef struct {
    unsigned multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount, sharedEncoderCount;
    unsigned sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount, computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;

static nvmlReturn_t do_attributes(nvmlDevice_t d, nvmlDeviceAttributes_t *a)
{
    DEV(d);
    NOPTR(a);
    if (mig < 0) return E_NOTSUP;  /* a MIG device's attributes; a full GPU has none here */
    memset(a, 0, sizeof *a);
    a->gpuInstanceSliceCount = a->computeInstanceSliceCount = g->mig_slices[mig];
    a->multiprocessorCount = 16 * g->mig_slices[mig];
    a->memorySizeMB = 10240ULL * g->mig_slices[mig];
    return OK;
}

static nvmlReturn_t do_index(nvmlDevice_t d, unsigned *idx)
{
    DEV(d);
    NOPTR(idx);
    *idx = d->gpu;
    return OK;
}

static nvmlReturn_t do_mig_mode(nvmlDevice_t d, unsigned *cur, unsigned *pend)
{
    DEV(d);
    NOPTR(cur); NOPTR(pend);
    if (mig >= 0) return E_NOTSUP;
    *cur = *pend = g->mig > 0;
    return OK;
}

static nvmlReturn_t do_mig_max(nvmlDevice_t d, unsigned *c)
{
    DEV(d);
    NOPTR(c);
    if (mig >= 0) return E_NOTSUP;
    *c = (unsigned)g->mig;
    return OK;
}

static nvmlReturn_t do_mig_by_index(nvmlDevice_t d, unsigned i, nvmlDevice_t *out)
{
    DEV(d);
    NOPTR(out);
    if (mig >= 0) return E_INVAL;
    if (g->mig == 0) return E_NOTSUP;
    if (i >= (unsigned)g->mig) return E_NOTFOUND;
    *out = &g_mig_h[d->gpu][i];
    return OK;
}

static nvmlReturn_t do_is_mig(nvmlDevice_t d, unsigned *is)
{
    DEV(d);
    NOPTR(is);
    *is = mig >= 0;
    return OK;
}

static nvmlReturn_t do_parent(nvmlDevice_t d, nvmlDevice_t *out)
{
    DEV(d);
    NOPTR(out);
    if (mig < 0) return E_INVAL;
    *out = &g_gpu_h[d->gpu];
    return OK;
}

/* ------------------------------------------------------- exported API --- */

EXPORT nvmlReturn_t nvmlInit(void) { LOCKED(do_init()); }
EXPORT nvmlReturn_t nvmlInit_v2(void) { LOCKED(do_init()); }
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned flags) { (void)flags; LOCKED(do_init()); }
EXPORT nvmlReturn_t nvmlShutdown(void) { LOCKED(do_shutdown()); }

EXPORT const char *nvmlErrorString(nvmlReturn_t r)
{
    switch (r) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 5: return "Already Initialized";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 25: return "Argument Version Mismatch";
    default: return "Unknown Error";
    }
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned len) { LOCKED(do_sys_str(v, len, "560.35.03")); }
EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *v, unsigned len) { LOCKED(do_sys_str(v, len, "12.560.35.03")); }
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) { LOCKED(do_sys_cuda(v)); }
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { LOCKED(do_sys_cuda(v)); }

EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned *c) { LOCKED(do_count(c)); }
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *c) { LOCKED(do_count(c)); }
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned i, nvmlDevice_t *d) { LOCKED(do_by_index(i, d)); }
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t *d) { LOCKED(do_by_index(i, d)); }
EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *u, nvmlDevice_t *d) { LOCKED(do_by_uuid(u, d)); }
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *b, unsigned n) { LOCKED(do_name(d, b, n)); }
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *b, unsigned n) { LOCKED(do_uuid(d, b, n)); }
EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned *i) { LOCKED(do_index(d, i)); }
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p) { LOCKED(do_pci(d, p)); }
EXPORT nvmlReturn_t nvmlDeviceGetPciInfoExt(nvmlDevice_t d, nvmlPciInfoExt_t *p) { LOCKED(do_pci_ext(d, p)); }
EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *a, int *b) { LOCKED(do_cc(d, a, b)); }
EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *e) { LOCKED(do_energy(d, e)); }
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned *p) { LOCKED(do_power(d, p)); }
EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int n, nvmlFieldValue_t *v) { LOCKED(do_field_values(d, n, v)); }
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned *p) { LOCKED(do_limit(d, p)); }
EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t d, unsigned *p) { LOCKED(do_limit(d, p)); }
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) { LOCKED(do_mem(d, m)); }
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) { LOCKED(do_mem2(d, m)); }
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int s, unsigned *t) { LOCKED(do_temp(d, s, t)); }
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) { LOCKED(do_util(d, u)); }
EXPORT nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t d, int *m) { LOCKED(do_compute_mode(d, m)); }
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned *c, void *i) { LOCKED(do_procs(d, c, i)); }
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned *c, void *i) { LOCKED(do_procs(d, c, i)); }
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t d, unsigned *c, void *i) { LOCKED(do_procs(d, c, i)); }
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned *c, void *i) { LOCKED(do_procs(d, c, i)); }
EXPORT nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t d, nvmlProcessUtilizationSample_t *s, unsigned *c,
                                                   unsigned long long t) { LOCKED(do_proc_util(d, s, c, t)); }
EXPORT nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t d, nvmlDeviceAttributes_t *a) { LOCKED(do_attributes(d, a)); }
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned *c, unsigned *p) { LOCKED(do_mig_mode(d, c, p)); }
EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned *c) { LOCKED(do_mig_max(d, c)); }
EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned i, nvmlDevice_t *o) { LOCKED(do_mig_by_index(d, i, o)); }
EXPORT nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t d, unsigned *m) { LOCKED(do_is_mig(d, m)); }
EXPORT nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t d, nvmlDevice_t *o) { LOCKED(do_parent(d, o)); }

/* ------------------------------------------------------- test helpers --- */

typedef enum { Q_ENERGY, Q_POWER, Q_COUNTER } query_t;

static double query(unsigned index, query_t q, double t0, double t1)
{
    pthread_mutex_lock(&g_mu);
    refresh();
    double v = NAN;
    if (index < g_count) {
        const gpu_t *g = &g_gpu[index];
        if (q == Q_ENERGY) v = tr_integral(&g->tr, t1 - g->epoch) - tr_integral(&g->tr, t0 - g->epoch);
        else if (q == Q_POWER) v = tr_power(&g->tr, t0 - g->epoch);
        else v = g->counter ? counter_mj(g, t0 - g->epoch) : -1;
    }
    pthread_mutex_unlock(&g_mu);
    return v;
}

EXPORT double fake_nvml_true_energy_j(unsigned index, double t0, double t1) { return query(index, Q_ENERGY, t0, t1); }
EXPORT double fake_nvml_power_w(unsigned index, double t) { return query(index, Q_POWER, t, t); }
EXPORT double fake_nvml_counter_mj(unsigned index, double t) { return query(index, Q_COUNTER, t, t); }
