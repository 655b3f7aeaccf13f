"""A run's life around its training: the folder held for one process, what an error leaves behind (a single
run's new folder removed unless it saved a checkpoint; a sweep job's failure recorded so the sweep runs on),
and the second entry of a ddp run, whose other ranks Lightning starts as this same command. And `quiet_console`:
what the commands show of Lightning's own output, set in this one place."""

import dataclasses
import functools
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hydra.errors import InstantiationException

from lit_cifar.run.dirs import held, removed_on_error
from lit_cifar.run.errors import RunRefused, RunStopped, exit_on_user_error, user_message
from lit_cifar.run.mode import in_multirun
from lit_cifar.run.record import RunPruned, record_failed, record_pruned
from lit_cifar.run.resume import Start

log = logging.getLogger(__name__)

# Lightning's ddp starts the other ranks as this same command, in rank 0's run dir, while rank 0 holds that
# folder and has written its record there: they learn from rank 0 how the run starts, and only train.
RANK_0_START = "LIT_CIFAR_RANK_0_START"


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
    other jobs run on; the console and the job's log get the reason in one line, and the job's log alone the
    traceback of an error that is no user error (a bug). A job refused because its folder holds a run it would
    change leaves that folder as it is, and stops the sweep. A search's trial stopped by its pruner is recorded
    as `pruned`."""
    try:
        yield
    except RunRefused as err:  # the sweep stops here: its other jobs would be refused the same way
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunPruned as pruned:
        record_pruned(run_dir, pruned)
    except Exception as err:
        message = user_message(err)
        bug = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ else err  # not Hydra's wrap
        reason = message or f"{type(bug).__name__}: {(str(bug).strip().splitlines() or [''])[0]}"
        log.error("job failed: %s", reason)
        if message is None:  # a bug: its traceback, for whoever reads the job's log
            _traceback_to_log_files()
        record_failed(run_dir, reason)


def _traceback_to_log_files() -> None:
    """The traceback of the exception being handled, to the log files only (those of Hydra's root handlers that
    write a file: the job's log), not to the console."""
    to_log_files(log, "the job failed with", logging.ERROR, sys.exc_info())


def to_log_files(logger: logging.Logger, message: str, level: int = logging.INFO, exc_info=None) -> None:
    """`message` from `logger` into the log files alone (the job's train.log), not onto the console: what a person
    looks up rather than reads as it runs (the whole config, the model's layers, a traceback)."""
    record = logger.makeRecord(logger.name, level, "", 0, message, (), exc_info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


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


# Lightning's (2.6) warnings and log lines that a user of these commands cannot act on, each hidden by its text (a
# regex of the warning's start; a log line's start) and the module or logger that gives it; the rest stays.
_WARNINGS = [
    # its own copy of torch's tree_flatten builds a LeafSpec, which torch 2.10+ deprecates (a FutureWarning whose
    # text names isinstance); nothing in a run's config changes it
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree"),
    # given on any machine where `srun` is installed, whether or not the run is meant for SLURM (hydra/launcher=slurm
    # is how a run goes there)
    (
        r"The `srun` command is available on your system but is not used",
        r"lightning\.fabric\.plugins\.environments\.slurm",
    ),
    # a resumed or extended run writes on into its own checkpoints/; the run dir's claim and the resume checks decide
    # when a folder may be written into, and a fresh run never shares one
    (r"Checkpoint directory .* exists and is not empty", r"lightning\.pytorch\.callbacks\.model_checkpoint"),
]
_LOG_LINES = {
    "lightning.pytorch.utilities.rank_zero": (
        "💡 Tip",  # adverts for Lightning's services (litlogger, litmodels)
        "TPU available: False",  # no TPU in any config here; "GPU available" stays: it says where the run trains
        # the line after "Restoring states from the checkpoint path at X" (which stays: the resume's record)
        "Restored all states from the checkpoint at",
        "Loaded model weights from the checkpoint at",
        "`Trainer.fit` stopped: `max_",  # the last epoch's line says `epoch N/N`; the lr finder's steps are its own
        "\nDetected KeyboardInterrupt",  # a stop's own `error:` line says what stopped it and how to go on
    ),
    # the lr finder's save of the weights it restores after its search (its path, a .lr_find_<uuid>.ckpt, is deleted)
    "lightning.pytorch.trainer.connectors.checkpoint_connector": ("`weights_only` was not set",),
}


class _NotForUsers(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith(self.starts) and "/.lr_find_" not in message  # the finder's own checkpoint


def quiet_console() -> None:
    """What the commands show of Lightning; called once Lightning is imported, before a Trainer is built.

    - Each log line once, through the handlers Hydra set up (the console and the run's log): the `lightning`
      package adds a console handler of its own at import and lets its lines propagate to Hydra's too, so each was
      printed twice; `lightning.pytorch` and `lightning.fabric`, when imported before Hydra's handlers exist, give
      themselves a handler and keep their lines from the run's log.
    - None of the lines in `_WARNINGS` and `_LOG_LINES`.
    - The lr finder's bar only on a terminal: Lightning builds that tqdm without `disable=None` (tqdm's switch for
      a terminal only), and it drew one line per step into a pipe or a file.

    The jobs of a sweep share a process: each step is done once."""
    import lightning
    from lightning.pytorch.tuner import lr_finder

    logging.getLogger("lightning").removeHandler(lightning._console)
    if logging.getLogger().hasHandlers():  # Hydra's; `lightning.pytorch` and `lightning.fabric` imported before them
        for name in ("lightning.pytorch", "lightning.fabric"):  # gave themselves a handler and kept their lines
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    for name, starts in _LOG_LINES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NotForUsers) for f in logger.filters):
            logger.addFilter(_NotForUsers(starts))
    for message, module in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module + r"\Z")
    if not isinstance(lr_finder.tqdm, functools.partial):
        lr_finder.tqdm = functools.partial(lr_finder.tqdm, disable=None)
