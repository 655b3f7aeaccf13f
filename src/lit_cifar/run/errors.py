"""User-facing errors: one line that names what is wrong and how to fix it, no traceback."""

import difflib
import errno
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.errors import ConfigCompositionException, InstantiationException, OverrideParseException

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
# What the machine refuses to a path the user chose (a run dir, data.root): not a bug in the code.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.ENOTDIR}


class UserError(Exception):
    """A problem with the user's input (config, data, checkpoint) rather than a bug."""


class RunRefused(UserError):
    """A start refused because its run dir holds a run it would change; the folder is left as it was."""


def group_hint(key: str, value: str) -> str | None:
    """For a top-level key close to a config group's name (`modle`): the override meant, else None."""
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir()) if CONF_DIR.is_dir() else []
    close = difflib.get_close_matches(key, groups, n=1)
    return f"did you mean {close[0]}={value}? (a config group is chosen without +)" if close else None


def environment_message(err: OSError) -> str:
    """A full disk, a folder without write permission, a file where a folder should be: one line."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" holding {err.filename}" if err.filename else ""
        return f"no space left on the device{where}; free some space, or write elsewhere (hydra.run.dir=…)"
    where = err.filename or "a file"
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"{where} is a file or lies under one, where a folder is needed; pick another folder (hydra.run.dir=…)"
    return f"cannot write {where} ({err.strerror}); pick a folder you can write to, e.g. hydra.run.dir=outputs/mine"


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
        cause = cause.__cause__
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


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn an error in the user's input (see `user_message`) into a one-line message on stderr and exit
    status 2, and a stopped run into its message and status; other errors propagate with their traceback."""
    try:
        yield
    except RunStopped as stop:
        print(f"error: {stop.message}", file=sys.stderr)
        raise
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


def run_app(main: Callable[[], object]) -> None:
    """Run a `@hydra.main` app so that a command line Hydra cannot compose (an unknown key, group or option,
    bad override syntax) ends, like every other user error, in one `error:` line and exit status 2.
    Hydra prints those over several lines itself; with HYDRA_FULL_ERROR=1 it raises them instead."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (ConfigCompositionException, OverrideParseException) as err:
        cause = f" ({str(err.__cause__).splitlines()[0]})" if err.__cause__ else ""
        text = str(err).split("Config search path")[0]  # Hydra's own search path: noise for a user
        if mistyped := re.search(r"Could not override '(\w+)'", text):  # a group mistyped: `+modle=` is no fix
            key = mistyped.group(1)
            value = next((o.split("=", 1)[1] for o in sys.argv[1:] if o.startswith(f"{key}=")), "…")
            if hint := group_hint(key, value):
                text = re.sub(r"To append to your config use \S+", hint, text)
        if isinstance(err, OverrideParseException):
            text = f"cannot parse the override '{err.override}': {text}"
            if err.override.count("=") > 1 or "," in err.override:  # e.g. a path into a sweep job's folder
                key, _, value = err.override.partition("=")
                quoted = f"{key}='{value}'"
                text += f"; a value holding '=' or ',' needs quotes that reach Hydra: \"{quoted}\""
        first, _, rest = one_line(text).partition("; ")
        print(f"error: {first}{cause}{'; ' + rest if rest else ''}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as err:  # raised by Hydra itself (making the run dir, opening its log), or let through;
        # after the clause above: Hydra's MissingConfigException is an OSError too
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {environment_message(err)}", file=sys.stderr)
        raise SystemExit(2) from None
