"""Train a small model for real over three hyper-parameter settings, each try measured by @task.carbon,
and publish the run's emissions in the model card.

prepare_dataset -> train (mapped x3, @task.carbon) -> evaluate (mapped) -> pick_best -> publish_model_card.
Training runs NumPy on the CPU, or PyTorch on the GPU when both are present (dags/include/mlp.py). The
card goes to the local folder $CARBON_DEMO_MODEL_DIR (default: <tmp>/airflow-carbon-demo/model); with
CARBON_DEMO_REPO_ID set it goes to that Hub repo instead (token: the huggingface_default Connection or
HF_TOKEN).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

from airflow_carbon import PublishModelCardOperator

SETTINGS = [
    {"hidden": 64, "lr": 0.02, "epochs": 6},
    {"hidden": 256, "lr": 0.05, "epochs": 8},
    {"hidden": 512, "lr": 0.1, "epochs": 10},
]


def _workdir(run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    path = Path(os.environ.get("CARBON_DEMO_DIR", tempfile.gettempdir())) / "airflow-carbon-demo" / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["airflow-carbon", "example"],
    doc_md=__doc__,
)
def carbon_training():
    @task
    def prepare_dataset(run_id: str | None = None) -> str:
        """A synthetic classification set (train and held-out splits) saved for the trainers; returns its path."""
        import numpy as np
        from include.mlp import make_dataset

        x, y = make_dataset(n=24_000)
        path = _workdir(run_id) / "dataset.npz"
        np.savez(path, x_train=x[:20_000], y_train=y[:20_000], x_val=x[20_000:], y_val=y[20_000:])
        return str(path)

    @task.carbon(location="FR", training_type="fine-tuning")
    def train(setting: dict, dataset: str, run_id: str | None = None, ti=None) -> dict:
        """Train one model: measured by airflow-carbon (energy, emissions, every try)."""
        import numpy as np
        from include.mlp import fit

        data = np.load(dataset)
        result = fit(data["x_train"], data["y_train"], **setting)
        model = _workdir(run_id) / f"model-{ti.map_index}.npz"
        np.savez(model, **result.pop("weights"))
        return {"setting": setting, "dataset": dataset, "model": str(model), **result}

    @task
    def evaluate(result: dict) -> dict:
        """Accuracy of the trained model on the held-out split."""
        import numpy as np
        from include.mlp import predict

        data, weights = np.load(result["dataset"]), np.load(result["model"])
        accuracy = float((predict(weights, data["x_val"]) == data["y_val"]).mean())
        return {**result, "val_accuracy": accuracy}

    @task
    def pick_best(results: list[dict]) -> dict:
        best = max(results, key=lambda r: r["val_accuracy"])
        print(f"best setting: {best['setting']} (validation accuracy {best['val_accuracy']:.3f})")
        return best

    dataset = prepare_dataset()
    trained = train.partial(dataset=dataset).expand(setting=SETTINGS)
    best = pick_best(evaluate.expand(result=trained))

    repo_id = os.environ.get("CARBON_DEMO_REPO_ID")
    model_dir = os.environ.get("CARBON_DEMO_MODEL_DIR", str(Path(tempfile.gettempdir()) / "airflow-carbon-demo" / "model"))
    best >> PublishModelCardOperator(
        task_id="publish_model_card",
        training_type="fine-tuning",
        task_ids=["train"],
        export_records=True,
        **({"repo_id": repo_id} if repo_id else {"local_dir": model_dir}),
    )


carbon_training()
