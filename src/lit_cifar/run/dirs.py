"""Who owns a run dir: a new folder per start, one live process per folder.

Hydra names run and sweep dirs by the second, so two starts in the same second would share one. The
`lit_cifar.claim` resolver (`claim_new_dir`) creates the folder itself (`os.mkdir` fails if it exists) and
takes the next free name (`14-05-09`, `14-05-09-2`, …); a run's `name=` puts its folder in one of its own
(`outputs/NAME/DATE_TIME`). A process holds an advisory lock (`flock`) on each run dir and
sweep dir it writes into, which the kernel releases when the process dies, even by kill -9; a second
process is refused while the first lives."""

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from lit_cifar.run.checkpoints import checkpoint_file
from lit_cifar.run.errors import UserError, stop_signal

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a folder name on every system, never `..` or an option
CLAIMED_PARENTS: set[Path] = set()  # folders (outputs/DATE) this process created for its claims
# The fds of the folders this process holds (see `lock`): a command run inside a longer-lived process (the tests)
# lets go of those its own end would have, when a sweep stopped before its end released its sweep dir.
LOCKS: set[int] = set()


def named_dir(path: str, name: object) -> str:
    """`outputs/NAME/DATE_TIME` for a dated `path` (`outputs/DATE/TIME`) and a run's `name`; refused in one line,
    before any folder is made, when the name is no plain folder name (empty, `..`, a path, a space)."""
    if not PLAIN_NAME.fullmatch(str(name)):
        shown = repr(name) if isinstance(name, str) else name
        raise UserError(
            f"name={shown} is no plain folder name: use letters, digits, '.', '_' and '-', starting with a letter or "
            "digit, e.g. name=resnet-lr3"
        )
    day, time = Path(path).parent, Path(path).name
    return str(day.parent / str(name) / f"{day.name}_{time}")


def claim_new_dir(path: str, name: object = None) -> str:
    """Create `path` (`named_dir`'s folder for a `name`), or `path-2`, `path-3`, … when it exists, and return the
    name created."""
    if name is not None:
        path = named_dir(path, name)
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True)
        CLAIMED_PARENTS.add(parent.resolve())
    except FileExistsError:
        pass
    candidate, n = path, 1
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{path}-{n}"


def this_run_dir() -> str:
    """The run dir of this start (a sweep job's own folder) once Hydra has set it; a placeholder where the
    config is only printed (`--cfg job --resolve`), since no folder is claimed for that."""
    runtime = HydraConfig.get().runtime
    return "<run dir>" if OmegaConf.is_missing(runtime, "output_dir") else runtime.output_dir


def evaluations_dir(ckpt_path: str | None) -> str:
    """`<run dir>/evaluate` for a run folder or a checkpoint in a run's `checkpoints/` folder; `outputs/evaluate`
    otherwise (also for a path that names no checkpoint, which is refused: no folder is made for it)."""
    try:
        path = checkpoint_file(ckpt_path or "")
    except UserError:
        return "outputs/evaluate"
    in_run = path.is_file() and path.parent.name == "checkpoints"
    return str(path.parent.parent / "evaluate") if in_run else "outputs/evaluate"


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on the folder `path`, or None when another process holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock(path: Path, what: str = "run") -> int:
    """Hold the existing folder `path` for this process until `release(fd)` (or the process ends); refuse when a
    live process holds it."""
    fd = _try_lock(path)
    if fd is None:
        raise UserError(f"{path} is in use by a {what} that is still going; wait for it to end, or pick another folder")
    LOCKS.add(fd)
    return fd


def release(fd: int) -> None:
    LOCKS.discard(fd)
    os.close(fd)


@contextmanager
def held(path: Path, what: str = "run") -> Iterator[None]:
    fd = lock(path, what)
    try:
        yield
    finally:
        release(fd)


def in_use(path: Path) -> bool:
    """Whether a live process holds the folder `path`."""
    if not path.is_dir():
        return False
    fd = _try_lock(path)
    if fd is not None:
        os.close(fd)
    return fd is None


def is_empty(path: Path) -> bool:
    return not any(path.iterdir())


def holds_something(path: Path) -> bool:
    """A file, or a folder with something in it (a checkpoints/ folder whose first save failed holds nothing)."""
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


@contextmanager
def removed_on_error(path: Path, new: bool, unless: str | None = None) -> Iterator[None]:
    """Remove the folder `path`, which this start created (`new`), when an error ends the block before
    anything worth keeping (`unless`, a name inside it) was written; its date folder too, once empty, when
    this start created it."""
    try:
        yield
    except BaseException as err:
        ended = isinstance(err, Exception) or stop_signal(err) is not None  # an error, or a stop (Ctrl-C, SIGTERM)
        if ended and new and not (unless and holds_something(path / unless)):
            shutil.rmtree(path, ignore_errors=True)
            if path.parent.resolve() in CLAIMED_PARENTS:  # never a folder of the user's (hydra.run.dir=…)
                with suppress(OSError):
                    path.parent.rmdir()
        raise
