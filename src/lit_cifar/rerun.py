"""`python -m lit_cifar.rerun SWEEP_DIR [--top K --seeds N] [override ...]`: the sweep in SWEEP_DIR again, with its
own command.

Short for its whole `python -m lit_cifar.train -m … hydra.sweep.dir=SWEEP_DIR` (as `results.md` shows it):
finished jobs are skipped, killed ones resumed, those never started run. An override replaces the sweep's
own value for its key, so `optim.lr=1e-3,2e-3,5e-3` widens the grid (only the new jobs train),
`trainer.max_epochs=20` extends every job and `rerun_failed=true` retries the failed ones.

`--top K --seeds N` then confirms the sweep's winner: the K best settings of its table train again with N seeds
that none of its jobs used, in the same sweep dir, and the table ranks settings by their mean with a 95% interval
(`hydra.sweeper.confirm.top` and `.seeds`, which a sweep or search can also set from its start). A confirmation
happens when asked for: the sweep's command, re-run later, does not repeat it.

The command it runs is printed first. The folder's record is data: an override in it that chooses code the
project's own configs do not name (a `_target_`, a config file elsewhere, the jobs' environment) is refused in one
line; given on rerun's command line, it is the user's own."""

import argparse
import os
import sys
from pathlib import Path

from lit_cifar.run.errors import UserError, exit_on_user_error
from lit_cifar.run.folders import SweepRecord
from lit_cifar.sweep.overrides import refuse_replayed_code, sweep_arguments, train_command


def at_least(least: int):
    def count(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise argparse.ArgumentTypeError(f"{text} is no whole number >= {least}, e.g. 2")
        return int(text)

    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lit_cifar.rerun",
        description="Re-run the sweep in SWEEP_DIR with its own command, and confirm its best settings with new seeds.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", nargs="?", type=Path, metavar="SWEEP_DIR", help="a multirun/DATE/TIME folder")
    parser.add_argument("--top", type=at_least(1), metavar="K", help="confirm the K best settings with new seeds")
    parser.add_argument("--seeds", type=at_least(1), metavar="N", help="new seeds for each of them (default 2)")
    parser.add_argument("overrides", nargs="*", metavar="override", help="key=value, replacing the sweep's own")
    args = parser.parse_intermixed_args(sys.argv[1:] if argv is None else argv)  # overrides before or after
    with exit_on_user_error():
        if args.sweep_dir is None:
            raise UserError("pass the sweep dir to re-run: python -m lit_cifar.rerun multirun/DATE/TIME [override ...]")
        sweep = SweepRecord.load(args.sweep_dir)
        if args.seeds is not None and args.top is None:
            raise UserError("--seeds needs --top K: how many of the best settings to confirm, e.g. --top 2 --seeds 2")
        confirm = [f"hydra.sweeper.confirm.top={args.top}"] if args.top is not None else []
        confirm += [f"hydra.sweeper.confirm.seeds={args.seeds}"] if args.seeds is not None else []
        refuse_replayed_code(sweep, args.overrides)
        arguments = sweep_arguments(sweep, [*args.overrides, *confirm])
    print(train_command(arguments), flush=True)  # what runs, before it runs
    os.execv(sys.executable, [sys.executable, "-m", "lit_cifar.train", *arguments])


if __name__ == "__main__":
    main()
