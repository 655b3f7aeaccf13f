"""User-facing errors: one line that names what is wrong and how to fix it, no traceback."""

import difflib
import errno
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, InstantiationException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError

from lit_cifar.run.mode import in_multirun

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
# What the machine refuses to a path the user chose (a run dir, data.root): not a bug in the code.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.ENOTDIR}


class UserError(Exception):
    """A problem with the user's input (config, data, checkpoint) rather than a bug."""


class RunRefused(UserError):
    """A start refused because its run dir holds a run it would change; the folder is left as it was."""


GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir()) if CONF_DIR.is_dir() else []


def group_hint(key: str, value: str) -> str | None:
    """For a top-level key close to a config group's name (`modle`): the override meant, else None."""
    close = difflib.get_close_matches(key, GROUPS, n=1)
    return f"did you mean {close[0]}={value}? (a config group is chosen without +)" if close else None


def close_group(key: str, value: str) -> str | None:
    """A config group close to `key` (`modle`) that has an option named `value` (`week11_cnn`), else None."""
    offering = [
        group for group in GROUPS if re.fullmatch(r"\w+", value) and (CONF_DIR / group / f"{value}.yaml").is_file()
    ]
    return next(iter(difflib.get_close_matches(key, offering, n=1)), None)


def initials(name: str) -> str:
    """`lr` for `learning_rate`: how a config shortens a name spelled out."""
    words = name.split("_")
    return "".join(word[:1] for word in words) if len(words) > 1 else ""


def close_name(name: str, names: list[str]) -> str | None:
    """The name among `names` that is `name`, or that it abbreviates or spells out (`lr`, `learning_rate`), or else the
    closest in spelling; None if none is close."""
    shortened = [other for other in names if name == initials(other) or initials(name) == other]
    close = [name] if name in names else shortened or difflib.get_close_matches(name, names, n=1)
    return next(iter(close), None)


def nearest_key(key: str, known: list[str]) -> str | None:
    """The known dotted key that `key` most likely meant: a close name beside it (`optim.learning_rate`: `optim.lr`),
    else the same or a close name elsewhere, the shallowest (`lr`, `data.max_epochs`: `optim.lr`,
    `trainer.max_epochs`); None if no name is close."""
    parent, _, name = key.rpartition(".")
    siblings = {other.rpartition(".")[2]: other for other in known if other.rpartition(".")[0] == parent}
    if match := close_name(name, list(siblings)):
        return siblings[match]
    anywhere: dict[str, str] = {}
    for other in sorted(known, key=lambda other: other.count(".")):
        anywhere.setdefault(other.rpartition(".")[2], other)
    match = close_name(name, list(anywhere))
    return anywhere[match] if match else None


def dotted_keys(node: object, prefix: str = "") -> list[str]:
    """Every key of a config and of the configs it holds, dotted (`optim.lr`); values are not resolved."""
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig) or node._is_none() or node._is_interpolation():
        return []
    keys = []
    for name in node:
        keys += [f"{prefix}{name}", *dotted_keys(node._get_node(name), f"{prefix}{name}.")]
    return keys


def unknown_key_message(key: str, value: str, config: object) -> str:
    """An override of a key that no config holds: the key, and the nearest known key, or else the keys beside it."""
    unknown = f"no key {key} in the config"
    if group := close_group(key, value):
        return f"{unknown}; did you mean {group}={value}? (a config group is chosen without +)"
    known = [  # Hydra's keys only for a key of Hydra's; never `_target_` and the like
        k
        for k in dotted_keys(config)
        if (k.split(".")[0] == "hydra") == key.startswith("hydra.") and not re.search(r"(^|\.)_", k)
    ]
    if (meant := nearest_key(key, known)) and meant != key:
        return f"{unknown}; did you mean {meant}? (--cfg job shows every key)"
    if "." not in key and (hint := group_hint(key, value)):
        return f"{unknown}; {hint}"
    parent = key.rpartition(".")[0]
    while parent and parent not in known:
        parent = parent.rpartition(".")[0]
    beside = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
    return f"{unknown}; {f'the keys of {parent}' if parent else 'its top-level keys'}: {', '.join(beside)}"


def unknown_key(err: Exception) -> str | None:
    """The message for Hydra's refusal to set a key that no config holds (`optim.learning_rate=1e-3`), else None."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    overridden = re.match(r"Could not override '([^']+)'", str(err))
    config = getattr(err.__cause__, "parent_node", None)
    if not overridden or not isinstance(err.__cause__, ConfigKeyError | ConfigAttributeError) or config is None:
        return None
    # the key the config lacks, which lies inside the override's value where that is a mapping (a search's params)
    key = getattr(err.__cause__, "full_key", None) or overridden.group(1)
    value = next((o.split("=", 1)[1] for o in sys.argv[1:] if o.startswith(f"{key}=")), "…")
    return unknown_key_message(key, value, config._get_root())


def _written_to() -> str:
    """Where a command writes, for an error that names no file (a writer's `write` or `flush`): its run dir, and the
    temp dir where that lies on another device (Lightning stages a checkpoint there)."""
    run_dir = OmegaConf.select(HydraConfig.get(), "runtime.output_dir") if HydraConfig.initialized() else None
    if not run_dir:
        return ""
    try:
        same = os.stat(run_dir).st_dev == os.stat(tempfile.gettempdir()).st_dev
    except OSError:
        same = True
    return run_dir if same else f"{run_dir} or the one holding {tempfile.gettempdir()}"


def environment_message(err: OSError) -> str:
    """A full disk, a folder without write permission, a file where a folder should be: one line."""
    folder, mine = ("hydra.sweep.dir", "multirun/mine") if in_multirun() else ("hydra.run.dir", "outputs/mine")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        where = err.filename2 or err.filename or _written_to()  # a copy's (a rename's) target is filename2
        where = f" holding {where}" if where else ""
        return f"no space left on the device{where}; free some space, or write elsewhere ({folder}=…)"
    where = err.filename or "a file"
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"{where} is a file or lies under one, where a folder is needed; pick another folder ({folder}=…)"
    return f"cannot write {where} ({err.strerror}); pick a folder you can write to, e.g. {folder}={mine}"


def user_message(err: BaseException) -> str | None:
    """The one-line message for an error caused by the user's input, None for anything else.

    Hydra wraps what a config's `_target_` raises in an InstantiationException, so the cause is looked
    up along the chain. Lightning's MisconfigurationException (no GPU, too many devices, …) counts as
    user input, and so does a TypeError or ValueError raised while a config is instantiated: that is
    how a value of the wrong type (`data.batch_size=abc`) shows up in an untyped config."""
    # Lightning is not imported for `--help` or a config error; an error can only be its own once it is.
    lightning_errors = sys.modules.get("lightning.fabric.utilities.exceptions")
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, UserError):
            return str(cause)
        if isinstance(cause, OSError) and cause.errno in ENVIRONMENT_ERRNOS:
            return environment_message(cause)
        if lightning_errors and isinstance(cause, lightning_errors.MisconfigurationException):
            if not re.search(r"device|accelerator|gpu|cuda", str(cause), re.IGNORECASE):
                return str(cause)  # another setting, which Lightning names itself
            import torch

            return (
                f"{cause} (this machine has {torch.cuda.device_count()} CUDA GPU(s)); fix trainer.accelerator/"
                "trainer.devices, e.g. trainer=cpu or trainer.devices=1"
            )
        # OmegaConf chains what a resolver raised (the run dir's claim) as the context of its own error
        cause = cause.__context__ if isinstance(cause, InterpolationResolutionError) else cause.__cause__
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, TypeError | ValueError):
        key = re.search(r"full_key: (\S+)", str(err))
        part = key.group(1) if key else "the config"
        return (
            f"cannot build {part} from its config ({type(err.__cause__).__name__}: {err.__cause__}); "
            "check the names and the types of the values you set for it"
        )
    return None


class RunStopped(SystemExit):
    """A run stopped by a signal (SIGTERM, Ctrl-C) after its last finished epoch was saved: status 128 + the
    signal's number, as a shell reports a process killed by it, so no scheduler takes it for finished."""

    def __init__(self, signum: int, resume: str) -> None:
        super().__init__(128 + signum)
        self.message = f"stopped by {signal.Signals(signum).name}; go on from its last finished epoch with: {resume}"


class Stopped(KeyboardInterrupt):
    """A command stopped by a signal: SIGTERM raises it as Ctrl-C raises KeyboardInterrupt (`stops_raised`), so a
    stop unwinds like one (what removes an unfinished folder on an error runs), and no `except Exception` (a sweep
    job recording its failure, Lightning) takes it for a failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# What a stopped command says after its signal's name, unless it says more (a training's fit: how to resume it): an
# unfinished evaluation's or tuning's folder is removed, a sweep keeps its finished jobs and epochs, and its command
# skips those.
KEPT = "what it finished is kept, nothing half written; run the same command again to go on"


def stop_signal(err: BaseException) -> int | None:
    """The signal that stopped a command, from what it raised (None for anything else): Ctrl-C's KeyboardInterrupt,
    our Stopped, Lightning's SIGTERMException, or the `exit(1)` a Lightning Trainer makes of a KeyboardInterrupt."""
    if isinstance(err, Stopped):
        return err.signum
    if isinstance(err, KeyboardInterrupt):
        return signal.SIGINT
    lightning = sys.modules.get("lightning.pytorch.utilities.exceptions")
    if lightning and isinstance(err, lightning.SIGTERMException):
        return signal.SIGTERM
    if isinstance(err, SystemExit) and err.code == 1 and isinstance(err.__context__, KeyboardInterrupt):
        return stop_signal(err.__context__)
    return None


# Whether this process tells its stop. Not the worker process of a parallel sweep's job: Ctrl-C reaches every process
# of the terminal's group, and the sweep's own process tells the stop, once (hydra_plugins.lit_cifar_parallel).
_stops_told_here = True


def stops_told_by_the_sweep() -> None:
    global _stops_told_here
    _stops_told_here = False


def tell_stop(line: str) -> None:
    if _stops_told_here:
        print(f"error: {line}", file=sys.stderr)


def exit_stopped(signum: int, what: str) -> NoReturn:
    """End a stopped command: its one line, and status 128 + the signal's number, as a shell reports a process
    killed by it, so no scheduler takes it for finished."""
    tell_stop(f"stopped by {signal.Signals(signum).name}; {what}")
    raise SystemExit(128 + signum) from None


def _raise_stopped(signum: int, frame: object) -> None:
    # A Lightning Trainer holds SIGTERM while it runs and calls the handler it found after its own: it stops at the
    # end of the batch itself (SIGTERMException), so this one leaves the stop to it.
    if signal.getsignal(signum) is _raise_stopped:
        raise Stopped(signum)


@contextmanager
def stops_raised() -> Iterator[None]:
    """In this block SIGTERM raises Stopped (its default would end the process at once, writing no line and
    removing nothing); where the process ignores it, or another handler holds it, it is left so."""
    held_elsewhere = signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, _raise_stopped)
    if held_elsewhere or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def stops_deferred() -> Iterator[None]:
    """A stop (Ctrl-C's SIGINT, SIGTERM) that comes while this block writes takes effect at its end, as Stopped:
    what the block writes is finished, never half written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise Stopped(received[0])


@contextmanager
def exit_on_user_error(stopped: str = KEPT) -> Iterator[None]:
    """Turn an error in the user's input (see `user_message`) into a one-line message on stderr and exit
    status 2, a stopped run into its message and status, and any other stop (SIGINT, SIGTERM) into its signal's
    name and `stopped` (what was kept, how to go on); other errors propagate with their traceback."""
    try:
        with stops_raised():
            yield
    except RunStopped as stop:
        tell_stop(stop.message)
        raise
    except (KeyboardInterrupt, SystemExit) as stop:
        signum = stop_signal(stop)
        if signum is None:
            raise
        exit_stopped(signum, stopped)
    except Exception as err:
        message = user_message(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def one_line(text: str) -> str:
    """Hydra's several-line message as one line: indented lines (option lists, details) become a comma list."""
    message = ""
    for raw in text.splitlines():
        line = raw.strip().rstrip(".")
        if not line:
            continue
        if not message or message.endswith(":"):
            message += (" " if message else "") + line
        else:
            message += (", " if raw[:1].isspace() else "; ") + line
    return message


@contextmanager
def background_errors_reported() -> Iterator[None]:
    """A full disk (or another error of the machine's) met by a writer's thread, TensorBoard's event writer's, is
    the main thread's to report in its one line: that writer raises it there at its next write or flush. So the
    thread's own traceback ("Exception in thread Thread-3: …") is not printed; one the block never met ends it
    in that line and status 2."""
    met: list[OSError] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, OSError) and args.exc_value.errno in ENVIRONMENT_ERRNOS:
            met.append(args.exc_value)
        else:
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
    if met:
        print(f"error: {environment_message(met[0])}", file=sys.stderr)
        raise SystemExit(2)


def run_app(main: Callable[[], object]) -> None:
    """Run a `@hydra.main` app so that a command line Hydra cannot compose (an unknown key, group or option,
    bad override syntax) ends, like every other user error, in one `error:` line and exit status 2.
    Hydra prints those over several lines itself; with HYDRA_FULL_ERROR=1 it raises them instead. A stop (Ctrl-C,
    SIGTERM) anywhere in the app, and an error of the machine in a writer's thread, end in one line too."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        with stops_raised(), background_errors_reported():
            main()
    except (KeyboardInterrupt, SystemExit) as stop:  # one that came outside the command's own block (Hydra's)
        signum = stop_signal(stop)
        if signum is None:
            raise
        exit_stopped(signum, KEPT)
    except (ConfigCompositionException, OverrideParseException) as err:
        cause = f" ({str(err.__cause__).splitlines()[0]})" if err.__cause__ else ""
        text = str(err).split("Config search path")[0]  # Hydra's own search path: noise for a user
        if (unknown := unknown_key(err)) is not None:
            print(f"error: {unknown}", file=sys.stderr)
            raise SystemExit(2) from None
        if isinstance(err, OverrideParseException):
            text = f"cannot parse the override '{err.override}': {text}"
            if err.override.count("=") > 1 or "," in err.override:  # e.g. a path into a sweep job's folder
                key, _, value = err.override.partition("=")
                quoted = f"{key}='{value}'"
                text += f"; a value holding '=' or ',' needs quotes that reach Hydra: \"{quoted}\""
        first, _, rest = one_line(text).partition("; ")
        print(f"error: {first}{cause}{'; ' + rest if rest else ''}", file=sys.stderr)
        raise SystemExit(2) from None
    except InterpolationResolutionError as err:  # a resolver's error: the run dir's claim (a bad name=, a file there)
        if (message := user_message(err)) is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as err:  # raised by Hydra itself (making the run dir, opening its log), or let through;
        # after the clause above: Hydra's MissingConfigException is an OSError too
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {environment_message(err)}", file=sys.stderr)
        raise SystemExit(2) from None
