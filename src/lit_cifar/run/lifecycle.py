"""A run's life around its training: the folder held for one process, what an error leaves behind (a single
run's new folder removed unless it saved a checkpoint; a sweep job's failure recorded so the sweep runs on),
and the second entry of a ddp run, whose other ranks Lightning starts as this same command."""

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lit_cifar.run.dirs import held, removed_on_error
from lit_cifar.run.errors import RunRefused, RunStopped, exit_on_user_error, user_message
from lit_cifar.run.record import RunPruned, record_failed, record_pruned
from lit_cifar.run.resume import Start

log = logging.getLogger(__name__)

# Lightning's ddp starts the other ranks as this same command, in rank 0's run dir, while rank 0 holds that
# folder and has written its record there: they learn from rank 0 how the run starts, and only train.
RANK_0_START = "LIT_CIFAR_RANK_0_START"


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def rank_0_start() -> Start | None:
    """How rank 0 started, in another rank of a ddp run; None in rank 0 (and in every run without ddp)."""
    told = os.environ.get(RANK_0_START)
    return Start(**json.loads(told)) if told else None


@contextmanager
def ranks_told(start: Start) -> Iterator[None]:
    """Tell the ranks that Lightning launches in this block how rank 0 starts (they inherit the environment)."""
    os.environ[RANK_0_START] = json.dumps(dataclasses.asdict(start))
    try:
        yield
    finally:
        del os.environ[RANK_0_START]


@contextmanager
def failure_recorded(run_dir: Path) -> Iterator[None]:
    """In a sweep job: turn any exception into `metrics.json` with status `failed` and the reason, so the
    other jobs run on; the traceback goes to the job's log. A job refused because its folder holds a run
    it would change leaves that folder as it is, and stops the sweep. A search's trial stopped by its pruner is
    recorded as `pruned`."""
    try:
        yield
    except RunRefused as err:  # the sweep stops here: its other jobs would be refused the same way
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunPruned as pruned:
        record_pruned(run_dir, pruned)
    except Exception as err:
        reason = user_message(err) or f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
        log.exception("job failed: %s", reason)
        record_failed(run_dir, reason)


@contextmanager
def run_held(run_dir: Path, new: bool) -> Iterator[None]:
    """The block that runs in `run_dir` (`new`: this start created it): held against a second process; a user
    error ends it in one line. In a sweep a failed job is recorded and the others run on (the sweep exits 1 at
    its end); a single run's new folder goes again on an error before its first checkpoint. A stopped run
    (RunStopped: SIGTERM, Ctrl-C) stops the whole sweep, with the command that goes on."""
    outcome = failure_recorded(run_dir) if in_multirun() else removed_on_error(run_dir, new, unless="checkpoints")
    with ExitStack() as stack:
        for context in (exit_on_user_error(), held(run_dir), outcome):
            stack.enter_context(context)
        yield


@contextmanager
def other_rank() -> Iterator[None]:
    """Another rank of a ddp run: rank 0 checked the start and says how to go on after a stop."""
    try:
        yield
    except RunStopped as stop:
        raise SystemExit(stop.code) from None
