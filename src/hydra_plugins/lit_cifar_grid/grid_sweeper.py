"""`hydra/sweeper=grid` (every sweep's default): Hydra's basic sweeper, every combination of the swept values as
a job, then the confirmation stage when `confirm.top` is set (lit_cifar.reporting.confirm): the best settings
again with new seeds, in the same sweep dir."""

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import DictConfig


class GridSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, confirm: DictConfig, params: dict | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.confirm = confirm

    def sweep(self, arguments: list[str]) -> Any:
        returns = super().sweep(arguments)
        if self.confirm.top:
            from pathlib import Path

            from lit_cifar.reporting.confirm import confirm
            from lit_cifar.run.errors import exit_on_user_error

            with exit_on_user_error():
                confirm(self.launcher, Path(self.config.hydra.sweep.dir), self.confirm.top, self.confirm.seeds,
                        first_job=sum(len(batch) for batch in returns))  # fmt: skip
        return returns
