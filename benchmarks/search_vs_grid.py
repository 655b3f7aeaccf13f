"""`python -m benchmarks.search_vs_grid [options]` (`make bench-search`): a grid sweep against the Optuna search with
pruning over the same ranges, and the lr finder's suggestion against the grid's best lr, on the CIFAR-10 slice.

For each seed, through the commands a user types: the 3 x 3 grid of lr x batch size (`-m optim.lr=a,b,c
data.batch_size=…`), the search over the same lr interval (log-uniform) and batch sizes (TPE + ASHA,
`--trials` trials), and `python -m lit_cifar.tune`. Figures per method: the best val/acc_best, the test accuracy
of that job, the epochs trained by all jobs together and the wall time. Then the search's confirmation stage
(`python -m lit_cifar.rerun SEARCH_DIR --top K --seeds N`, by default --top 2 --seeds 3): whether the search's
single-seed winner is still the best setting once its K best settings have N more seeds each, and how the two rules
that declare a best before the confirmation fared: the table's tests at 5% (`vs best`: every other setting `worse`)
against the rule it replaced (no other setting's 95% interval overlaps the best's). Printed, and written as
markdown + JSON to `<out>/search_<timestamp>.{md,json}`."""

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from benchmarks.cli import bench_parser
from lit_cifar.reporting.compare import WORSE
from lit_cifar.reporting.settings import Setting, setting_id, settings
from lit_cifar.reporting.table import collect, compared_keys, ranked_by
from lit_cifar.run.errors import UserError, exit_on_user_error, run_app
from lit_cifar.run.folders import SweepRecord


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = bench_parser("benchmarks.search_vs_grid", __doc__)
    p.add_argument("--lrs", default="5e-4,1e-3,2e-3", help="the grid's lrs; the search draws from their range")
    p.add_argument("--batch-sizes", default="128,256,512")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--trials", type=int, default=9, help="the search's n_trials")
    p.add_argument("--seeds", default="0,1", help="each seed trains every grid job, search trial and finder")
    p.add_argument("--confirm-top", type=int, default=2, help="the search's best settings its confirmation retrains")
    p.add_argument("--confirm-seeds", type=int, default=3, help="new seeds for each of them")
    p.add_argument("--overrides", default="model=week11_cnn data.val_size=500 trainer=cpu", help="for every run")
    p.add_argument("--out", default="bench")
    args = p.parse_args(argv)
    args.lr_values = [float(v) for v in args.lrs.split(",")]
    args.seed_values = [int(s) for s in args.seeds.split(",")]
    if len(args.lr_values) < 2 or min(args.lr_values) <= 0:
        raise UserError(f"--lrs={args.lrs} needs at least two positive values, e.g. 5e-4,1e-3,2e-3")
    return args


def run(args: argparse.Namespace, module: str, *overrides: str, multirun: bool = False) -> float:
    """Run `python -m module [-m]` with the common overrides; return its wall time."""
    common = [
        f"data.root={args.data_root}", "data.verify_checksums=false", "data.download=false",
        "callbacks.progress_bar=null", f"trainer.max_epochs={args.epochs}", *args.overrides.split(),
    ]  # fmt: skip
    begin = time.perf_counter()
    command = [sys.executable, "-m", module, *(["-m"] if multirun else []), *common, *overrides]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"python -m {module} {' '.join(overrides)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - begin


def outcome(name: str, sweep_dir: Path, wall: float) -> dict:
    """The best finished job of a sweep dir, and what all its jobs cost."""
    _, rows, curves = collect(SweepRecord.load(sweep_dir))
    best = next(row for row in rows if row["status"] == "ok")  # the table's order: best val/acc_best first
    return {
        "method": name,
        "best val/acc": best["val/acc_best"],
        "its test/acc": best["test/acc"],
        "best lr": float(best["overrides"]["optim.lr"]),
        "best batch": int(best["overrides"]["data.batch_size"]),
        "epochs": sum(len(curve) for curve in curves.values()),
        "jobs": len(rows),
        "pruned": sum(row["status"] == "pruned" for row in rows),
        "wall s": wall,
    }


def ranked_settings(sweep_dir: Path) -> list[Setting]:
    """The settings of a sweep dir as its table ranks them, best first (by their mean when they have several seeds)."""
    keys, rows, _ = collect(SweepRecord.load(sweep_dir))
    return settings(rows, compared_keys(keys, rows), ranked_by(rows))


def declared_best(found: list[Setting], rule: str) -> Setting | None:
    """The best setting when `rule` tells it apart from every other, else None. `test`: the table's own (each other
    setting `worse` at 5%, Holm-adjusted); `overlap`: the rule it replaced, no other 95% interval reaches the best's."""
    best, others = found[0], [s for s in found[1:] if s.value is not None]
    if rule == "test":
        apart = all(other.comparison.word == WORSE for other in others)
    else:
        apart = all(other.value.high < best.value.low or other.value.low > best.value.high for other in others)
    return best if apart else None


RULES = {"test": "tests at 5%", "overlap": "intervals overlap"}


def confirmation(args: argparse.Namespace, search_dir: Path) -> dict:
    """The search's confirmation stage: its single-seed winner against the winner once confirmed, and whether the
    best each rule declared before it (if any) is still the best."""
    found = ranked_settings(search_dir)
    before, declared = found[0], {rule: declared_best(found, rule) for rule in RULES}
    begin = time.perf_counter()
    command = [sys.executable, "-m", "lit_cifar.rerun", str(search_dir), "--top", str(args.confirm_top),
               "--seeds", str(args.confirm_seeds)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    after = ranked_settings(search_dir)[0]

    def same(setting: Setting | None) -> bool | None:
        return None if setting is None else setting_id(setting.runs[0]) == setting_id(after.runs[0])

    return {
        "single-seed winner": before.label,
        "its value": before.value.mean,
        "confirmed winner": after.label,
        "confirmed mean": str(after.value),
        "same": same(before),
        **{f"declared by {rule}": None if declared[rule] is None else declared[rule].label for rule in RULES},
        **{f"still best, {rule}": same(declared[rule]) for rule in RULES},
        "wall s": time.perf_counter() - begin,
    }


def one_seed(args: argparse.Namespace, seed: int, folder: Path) -> dict:
    grid_dir, search_dir, tune_dir = folder / f"grid-{seed}", folder / f"search-{seed}", folder / f"tune-{seed}"
    wall = run(args, "lit_cifar.train", f"optim.lr={args.lrs}", f"data.batch_size={args.batch_sizes}",
               f"seed={seed}", f"hydra.sweep.dir={grid_dir}", multirun=True)  # fmt: skip
    grid = outcome("grid", grid_dir, wall)
    low, high = min(args.lr_values), max(args.lr_values)
    wall = run(
        args, "lit_cifar.train", "hydra/sweeper=optuna", f"optim.lr=tag(log, interval({low}, {high}))",
        f"data.batch_size=choice({args.batch_sizes})", f"hydra.sweeper.n_trials={args.trials}", f"seed={seed}",
        f"hydra.sweep.dir={search_dir}", multirun=True,
    )  # fmt: skip
    search = outcome("search", search_dir, wall)
    wall = run(args, "lit_cifar.tune", f"data.batch_size={grid['best batch']}", f"seed={seed}",
               f"hydra.run.dir={tune_dir}")  # fmt: skip
    suggested = json.loads((tune_dir / "lr_find.json").read_text())["found"]["optim.lr"]
    finder = {"suggested lr": suggested, "grid best lr": grid["best lr"], "wall s": wall}
    finder["factor"] = max(suggested, grid["best lr"]) / min(suggested, grid["best lr"])  # >= 1
    return {"seed": seed, "grid": grid, "search": search, "finder": finder, "confirm": confirmation(args, search_dir)}


def summary(runs: list[dict]) -> dict:
    def mean(method: str, key: str) -> float:
        return statistics.fmean(run[method][key] for run in runs)

    return {
        "val/acc gap (grid - search), points": 100 * (mean("grid", "best val/acc") - mean("search", "best val/acc")),
        "epochs, search / grid": mean("search", "epochs") / mean("grid", "epochs"),
        "wall time, search / grid": mean("search", "wall s") / mean("grid", "wall s"),
        "lr finder's suggestion vs grid's best lr, times apart (geometric mean)": math.exp(
            statistics.fmean(math.log(run["finder"]["factor"]) for run in runs)
        ),
        "the search's single-seed winner is its confirmed winner, fraction of seeds": statistics.fmean(
            run["confirm"]["same"] for run in runs
        ),
        **{f"{words}: declared a best, fraction of seeds": _fraction(runs, rule) for rule, words in RULES.items()},
        **{
            f"{words}: its declared best still best after the confirmation, fraction of those": _kept(runs, rule)
            for rule, words in RULES.items()
        },  # fmt: skip
    }


def _fraction(runs: list[dict], rule: str) -> float:
    return statistics.fmean(run["confirm"][f"declared by {rule}"] is not None for run in runs)


def _kept(runs: list[dict], rule: str) -> float:
    """NaN when the rule never declared a best."""
    kept = [run["confirm"][f"still best, {rule}"] for run in runs if run["confirm"][f"declared by {rule}"]]
    return statistics.fmean(kept) if kept else math.nan


def markdown(result: dict) -> str:
    columns = ["best val/acc", "its test/acc", "best lr", "best batch", "epochs", "jobs", "pruned", "wall s"]
    lines = [
        f"# Search against grid ({result['timestamp']})",
        "",
        f"{result['settings']}",
        "",
        "| seed | method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for run in result["runs"]:
        for method in ("grid", "search"):
            row = run[method]
            formats = {"best val/acc": ".4f", "its test/acc": ".4f", "best lr": ".2g", "wall s": ".0f"}
            cells = [format(row[c], formats.get(c, "")) for c in columns]
            lines.append(f"| {run['seed']} | {method} | " + " | ".join(cells) + " |")
    lines += ["", "| seed | lr finder suggests | grid's best lr | factor |", "|---|---|---|---|"]
    for run in result["runs"]:
        f = run["finder"]
        lines.append(f"| {run['seed']} | {f['suggested lr']} | {f['grid best lr']} | {f['factor']:.1f} |")
    lines += [
        "",
        "| seed | search's single-seed winner | its val/acc | confirmed winner | its mean, 95% | same "
        "| declared by the tests | still best | declared by overlap | still best |",
        "|---" * 10 + "|",
    ]
    for run in result["runs"]:
        c = run["confirm"]
        names = ("single-seed winner", "its value", "confirmed winner", "confirmed mean", "same", "declared by test",
                 "still best, test", "declared by overlap", "still best, overlap")  # fmt: skip
        cells = [f"{c[n]:.4f}" if n == "its value" else "" if c[n] is None else c[n] for n in names]
        lines.append(f"| {run['seed']} | " + " | ".join(map(str, cells)) + " |")
    lines += ["", *(f"- {key}: {value:.3f}" for key, value in result["summary"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    with exit_on_user_error():
        args = parse_args(argv)
        if not (Path(args.data_root) / "cifar-10-batches-py").is_dir():
            raise UserError(f"--data-root={args.data_root} holds no cifar-10-batches-py/; point it at CIFAR-10")
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out = Path(args.out)
        folder = out / f"search_{stamp}"
        folder.mkdir(parents=True)
        runs = []
        for seed in args.seed_values:
            print(f"seed {seed}: grid, search, lr finder", flush=True)
            runs.append(one_seed(args, seed, folder))
        settings = (
            f"{args.epochs} epochs, lrs {args.lrs} x batch sizes {args.batch_sizes}, search of {args.trials} trials "
            f"(TPE + ASHA), seeds {args.seeds}, confirmation of the search's {args.confirm_top} best settings with "
            f"{args.confirm_seeds} new seeds each; {args.overrides}; the runs are in {folder}"
        )
        result = {"timestamp": stamp, "settings": settings, "runs": runs, "summary": summary(runs)}
        text = markdown(result)
        (out / f"search_{stamp}.md").write_text(text)
        (out / f"search_{stamp}.json").write_text(json.dumps(result, indent=2))
        print("\n" + text + f"\nwritten to {out}/search_{stamp}.md and .json")


if __name__ == "__main__":
    run_app(main)
