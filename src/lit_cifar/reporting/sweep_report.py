"""The Hydra callback of every multirun (conf/hydra/default.yaml): the sweep guard before the sweep, its
results table at its end."""

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lit_cifar.run.dirs import release
from lit_cifar.run.errors import exit_on_user_error, stops_deferred
from lit_cifar.run.record import FINAL
from lit_cifar.sweep.guard import hold_sweep_dir
from lit_cifar.sweep.search import is_search


class SweepReport(Callback):
    """Before a sweep: hold its sweep dir and refuse what would mix results (lit_cifar.sweep.guard).
    At its end: write and print its results table; exit with status 1 unless every job finished (128 + the
    signal's number after a stop that came while it wrote)."""

    def __init__(self) -> None:
        self.sweep_dir_lock: int | None = None  # an fd: the callback travels (pickled) to parallel jobs

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        with exit_on_user_error():  # Hydra turns a callback's exceptions into warnings, but lets SystemExit through
            self.sweep_dir_lock = hold_sweep_dir(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from lit_cifar.reporting.table import write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        written = f"the sweep's jobs and its results table are written in {sweep_dir}"
        try:
            # a table refused (jobs measured on different data) ends the sweep in one line; a stop that comes while
            # the table is written (SIGTERM, Ctrl-C) waits for it to be finished
            with exit_on_user_error(stopped=written), stops_deferred():
                rows = write_report(sweep_dir)
        finally:
            release(self.sweep_dir_lock)
        finished = (*FINAL, "pruned", "failed") if is_search(config.hydra) else FINAL  # a failed trial: a result
        unfinished = [row for row in rows if row["status"] not in finished]
        if unfinished:
            print(f"error: {unfinished_line(unfinished, len(rows))}; see the status column", file=sys.stderr)
            raise SystemExit(1)


NAMED_JOBS = 3  # the unfinished jobs one error line names; the table lists them all


def unfinished_line(unfinished: list[dict], jobs: int) -> str:
    """`2 of 3 jobs did not finish (a, b)`, at most NAMED_JOBS named, with their reason when they share one (a
    data.root that holds no data fails every job alike)."""
    names = [row["job"] for row in unfinished]
    named = ", ".join(names[:NAMED_JOBS]) + (f" and {len(names) - NAMED_JOBS} more" if len(names) > NAMED_JOBS else "")
    reasons = {row["reason"] for row in unfinished}
    alike = len(unfinished) > 1 and len(reasons) == 1 and "" not in reasons
    return f"{len(unfinished)} of {jobs} jobs did not finish ({named})" + (f", each: {reasons.pop()}" if alike else "")
