"""`python -m lit_cifar.rerun SWEEP_DIR [override ...]`: the sweep in SWEEP_DIR again, with its own command.

Short for its whole `python -m lit_cifar.train -m … hydra.sweep.dir=SWEEP_DIR` (as `results.md` shows it):
finished jobs are skipped, killed ones resumed, those never started run. An override replaces the sweep's
own value for its key, so `optim.lr=1e-3,2e-3,5e-3` widens the grid (only the new jobs train),
`trainer.max_epochs=20` extends every job and `rerun_failed=true` retries the failed ones."""

import os
import sys
from pathlib import Path

from lit_cifar.run.errors import UserError, exit_on_user_error
from lit_cifar.sweep.overrides import sweep_arguments


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    with exit_on_user_error():
        if not args or args[0].startswith("-"):
            raise UserError("pass the sweep dir to re-run: python -m lit_cifar.rerun multirun/DATE/TIME [override ...]")
        sweep_dir = Path(args[0])
        if not (sweep_dir / "multirun.yaml").is_file():
            raise UserError(f"{sweep_dir} is not a sweep dir (no multirun.yaml); pass a multirun/DATE/TIME folder")
        train = [sys.executable, "-m", "lit_cifar.train", *sweep_arguments(sweep_dir, args[1:])]
    os.execv(sys.executable, train)


if __name__ == "__main__":
    main()
