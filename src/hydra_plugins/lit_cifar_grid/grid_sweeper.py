"""`hydra/sweeper=grid` (every sweep's default): Hydra's basic sweeper, every combination of the swept values as
a job, then the confirmation stage when `confirm.top` is set (lit_cifar.reporting.confirm): the best settings
again with new seeds, in the same sweep dir. A job whose folder holds a run with nothing left to train is not
launched (its process would only start, find it and stop: seconds each), so a re-run reaches new work at once."""

import logging
from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SkipFinished:
    """A sweeper's launcher that launches only the jobs with work to do (lit_cifar.sweep.jobs.finished_outcome);
    a finished job's return is its recorded metrics. Jobs keep their numbers where a folder's name holds one.
    Each job's config is composed once: by `compose` (Hydra's check that a batch composes), kept for `launch`."""

    def __init__(self, launcher, config: DictConfig, loader) -> None:
        self.launcher, self.config, self.loader = launcher, config, loader
        self.composed: dict[tuple[str, ...], DictConfig] = {}

    def compose(self, batch: Sequence[Sequence[str]]) -> None:
        self.composed = {tuple(job): self.loader.load_sweep_config(self.config, list(job)) for job in batch}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.launcher, name)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from lit_cifar.sweep.jobs import finished_outcome
        from lit_cifar.sweep.overrides import job_name

        if any(job_name(self.config.hydra, list(job), 0) != job_name(self.config.hydra, list(job), 1)
               for job in job_overrides):  # fmt: skip
            return self.launcher.launch(job_overrides, initial_job_idx)  # folders named by number: none may move
        found = [finished_outcome(self.config, self._composed(job), list(job), initial_job_idx + n)
                 for n, job in enumerate(job_overrides)]  # fmt: skip
        todo = [job for job, outcome in zip(job_overrides, found, strict=True) if outcome is None]
        if len(todo) < len(job_overrides):
            skipped = len(found) - len(todo)
            log.info("%d of %d jobs finished already: left as they are, not started", skipped, len(found))
        self.composed = {}
        launched = iter(self.launcher.launch(todo, initial_job_idx) if todo else [])
        return [
            next(launched) if outcome is None
            else JobReturn(overrides=list(job), status=JobStatus.COMPLETED, _return_value=outcome.get("metrics"))
            for job, outcome in zip(job_overrides, found, strict=True)
        ]  # fmt: skip

    def _composed(self, job: Sequence[str]) -> DictConfig:
        composed = self.composed.get(tuple(job))
        return self.loader.load_sweep_config(self.config, list(job)) if composed is None else composed


class GridSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, confirm: DictConfig, params: dict | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.confirm = confirm

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = SkipFinished(self.launcher, config, hydra_context.config_loader)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        self.launcher.compose(batch)

    def sweep(self, arguments: list[str]) -> Any:
        from lit_cifar.sweep.jobs import workers_of

        with workers_of(self.launcher):
            returns = super().sweep(arguments)
            if self.confirm.top:
                from pathlib import Path

                from lit_cifar.reporting.confirm import confirm
                from lit_cifar.run.errors import exit_on_user_error

                with exit_on_user_error():
                    confirm(self.launcher, Path(self.config.hydra.sweep.dir), self.confirm.top, self.confirm.seeds,
                            first_job=sum(len(batch) for batch in returns))  # fmt: skip
        return returns
