"""Recompute cases.json from the bytes of the saved cards (run: python tag_cases.py [--write]).

Front matter is located exactly as huggingface_hub does it: the text is decoded as utf-8-sig,
matched with REGEX below, and group 2 goes through yaml.safe_load.
"""
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REGEX = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
EMPTY_BLOCK = re.compile(r"^\s*---[ \t]*(?:\r\n|\r|\n)---[ \t]*(?:\r\n|\r|\n|$)")
QUOTED_KEY = re.compile(r"""(?m)^["']co2_eq_emissions["'][ \t]*:""")
CO2_LINE = re.compile(r"""^["']?co2_eq_emissions["']?[ \t]*:""")


def tags_for(raw: bytes) -> list:
    tags = []
    text = raw.decode("utf-8-sig")
    if raw.startswith(b"\xef\xbb\xbf"):
        tags.append("bom")
    if b"\r\r\n" in raw:
        tags.append("cr-cr-lf")
    if EMPTY_BLOCK.match(text):
        tags.append("empty-fence-block")
    m = REGEX.match(text)
    if m is None:
        tags.append("no-front-matter")
        if "\r\n" in text:
            tags.append("crlf")
        tags.append("no-co2")
    else:
        opening, front, closing = m.group(1), m.group(2), m.group(3)
        if opening[: opening.index("---")]:
            tags.append("leading-whitespace")
        if re.search(r"---[ \t]+", closing):
            tags.append("fence-trailing-space")
        head = opening + front + closing
        body = text[m.end():]
        if "\r\n" in head:
            tags.append("crlf")
        elif "\r\n" in body:
            tags.append("lf-front-crlf-body")
        if QUOTED_KEY.search(front):
            tags.append("quoted-key")
        try:
            data = yaml.safe_load(front)
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise ValueError("metadata block is not a mapping")
        except Exception:
            data = None
            tags.append("invalid")
        if data is not None:
            if "co2_eq_emissions" in data:
                value = data["co2_eq_emissions"]
                if isinstance(value, dict):
                    tags.append("co2-mapping")
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    tags.append("co2-number")
                # the co2 block, then a blank line or a column-0 comment inside the front matter
                lines = front.splitlines()
                starts = [i for i, line in enumerate(lines) if CO2_LINE.match(line)]
                if starts:
                    j = starts[0] + 1
                    while j < len(lines) and lines[j][:1] in (" ", "\t") and lines[j].strip():
                        j += 1
                    if j < len(lines) and (not lines[j].strip() or lines[j].startswith("#")):
                        tags.append("co2-then-comment")
            else:
                tags.append("no-co2")
            if "model-index" in data:
                tags.append("model-index")
    if not raw.endswith(b"\n"):
        tags.append("no-final-newline")
    return tags


def main() -> None:
    out = {}
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".md") or name == "SOURCES.md":
            continue
        with open(os.path.join(HERE, name), "rb") as fh:
            tags = tags_for(fh.read())
        if name.startswith("huggingface__huggingface_hub__"):
            tags.insert(0, "hf-fixture")
        out[name] = tags
    if "--write" in sys.argv:
        with open(os.path.join(HERE, "cases.json"), "w", encoding="utf-8", newline="\n") as fh:
            json.dump(out, fh, indent=2, sort_keys=True)
            fh.write("\n")
    for name, tags in out.items():
        print(f"{name}: {', '.join(tags)}")


if __name__ == "__main__":
    main()
