"""User-facing errors: one line that names what is wrong and how to fix it, no traceback."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem with the user's input (config, data, checkpoint) rather than a bug."""


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a UserError into a one-line message on stderr and exit status 2."""
    try:
        yield
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
