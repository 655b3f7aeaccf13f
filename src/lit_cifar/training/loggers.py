"""Targets of conf/logger/*.yaml: TensorBoard with epoch-level curves against the epoch; MLflow and W&B, built
only when their package is installed, else one error line naming the extra to install (Lightning's own message
names no extra)."""

import fcntl
import importlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import ModuleType

from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

from lit_cifar.run.errors import UserError


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


class EpochTensorBoardLogger(TensorBoardLogger):
    """TensorBoard with epoch-level metrics (those under train/, val/ and test/, but the per-step `…_step` ones)
    written against the epoch (1 is the first, as everywhere a person reads) instead of the global step, so the
    curves of runs with different batch sizes line up: Lightning writes everything against the step, where batch
    size 512 ends an epoch at step 16 of the slice and 128 at step 64. Per-step values (the step loss, the lr)
    stay against the step; the `epoch` scalar Lightning adds to every call is left out, as it is the horizontal
    axis of the others."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        epoch = metrics.get("epoch")
        per_epoch = {
            name: value
            for name, value in metrics.items()
            if name.startswith(("train/", "val/", "test/")) and not name.endswith("_step")
        }
        per_step = {name: value for name, value in metrics.items() if name not in per_epoch and name != "epoch"}
        if per_step:
            super().log_metrics(per_step, step)
        if per_epoch:
            super().log_metrics(per_epoch, _epochs_done(per_epoch, epoch) if epoch is not None else step)


def _epochs_done(metrics: dict[str, float], epoch: float) -> int:
    """The epochs finished when `metrics` were measured. Lightning's `epoch` is the running epoch, counted from 0,
    during fit; a test after fit gets the count of the epochs that fit finished."""
    testing = any(name.startswith("test/") for name in metrics)
    return int(epoch) + (0 if testing else 1)
