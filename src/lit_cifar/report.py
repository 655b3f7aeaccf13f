"""`python -m lit_cifar.report DIR [DIR ...] [--out FOLDER]`: sweeps and runs as one table.

A DIR is a sweep dir (multirun/DATE/TIME), a run dir (outputs/DATE/TIME) or a glob of them; see
lit_cifar.reporting.table for what the table holds and which files it writes."""

import argparse
from pathlib import Path

from lit_cifar.reporting.table import expand, is_sweep_dir, report
from lit_cifar.run.errors import exit_on_user_error, stops_deferred


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lit_cifar.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="a sweep dir (multirun/DATE/TIME), a run dir (outputs/DATE/TIME), or a glob",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FOLDER",
        help="write results.md/.csv/.png into this folder (by default into a single sweep dir)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with exit_on_user_error():
        paths = expand(args.dirs)
        with stops_deferred():  # a stop while it writes: the table is finished first, never half written
            report(paths, args.out or (paths[0] if len(paths) == 1 and is_sweep_dir(paths[0]) else None))


if __name__ == "__main__":
    main()
