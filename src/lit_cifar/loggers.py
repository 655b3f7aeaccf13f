"""Targets of conf/logger/mlflow.yaml and wandb.yaml: Lightning's loggers, built only when their package is
installed, else one error line naming the extra to install (Lightning's own message names no extra)."""

import fcntl
import importlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import ModuleType

from lightning.pytorch.loggers import MLFlowLogger, WandbLogger

from lit_cifar.errors import UserError


def _require(package: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError:
        raise UserError(f"logger={extra} needs the {package} package: pip install -e '.[{extra}]'") from None


@contextmanager
def _one_job_at_a_time(path: str) -> Iterator[None]:
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def mlflow_logger(tracking_uri: str, experiment_name: str, run_name: str | None = None, **kwargs) -> MLFlowLogger:
    """The parallel jobs of a sweep share its store and experiment. MLflow creates the tables of a new SQLite
    store on first use, which jobs doing it side by side corrupt, so they take turns; and two jobs may both
    find no experiment and create it (on a tracking server), where the second is refused and finds it.
    A single run's `run_name` is empty (`lit_cifar.run_name` names sweep jobs): None lets MLflow pick one."""
    mlflow = _require("mlflow", "mlflow")
    sqlite = tracking_uri.removeprefix("sqlite:///") if tracking_uri.startswith("sqlite:///") else None
    with _one_job_at_a_time(f"{sqlite}.lock") if sqlite else nullcontext():
        client = mlflow.MlflowClient(tracking_uri)
        if client.get_experiment_by_name(experiment_name) is None:
            try:
                client.create_experiment(experiment_name, kwargs.get("artifact_location"))
            except mlflow.exceptions.MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
    return MLFlowLogger(experiment_name=experiment_name, run_name=run_name or None, tracking_uri=tracking_uri, **kwargs)


def wandb_logger(name: str | None = None, **kwargs) -> WandbLogger:
    wandb = _require("wandb", "wandb")
    if wandb.run is not None:  # the previous job of a sweep in this process: WandbLogger would log on into it
        wandb.finish()
    return WandbLogger(name=name or None, **kwargs)
