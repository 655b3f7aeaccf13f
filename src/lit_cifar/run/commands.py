"""The one form of every command the project prints (a resume line, `train it again with`, a sweep's re-run
command, a rerun hint): the README's, `.venv/bin/python -m lit_cifar.…`, which runs as printed without an
activated venv."""

import os
import shlex
import sys


def python() -> str:
    """The interpreter running this command, as the user types it where they stand: relative to the working
    directory when it lies under it (`.venv/bin/python` at the repo root, the README's spelling), else its absolute
    path (a project installed elsewhere, or a command started from another folder), which runs from anywhere.
    Never a bare `python`: without an activated venv that is another interpreter, without this project."""
    # its folder resolved as the working directory is (symlinks), but not the file: a venv's python is a symlink
    # to the base interpreter, which lacks the venv's packages
    folder, name = os.path.split(sys.executable)
    executable = os.path.join(os.path.realpath(folder), name)
    relative = os.path.relpath(executable)
    if relative.startswith(os.pardir):
        return executable
    return relative if os.sep in relative else os.path.join(os.curdir, relative)  # `python` alone: a PATH search


def command(module: str, *arguments: str) -> str:
    """`.venv/bin/python -m lit_cifar.<module> arguments…`, each argument quoted for a POSIX shell."""
    return shlex.join([python(), "-m", f"lit_cifar.{module}", *arguments])
