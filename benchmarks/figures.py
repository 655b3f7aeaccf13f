"""`python -m benchmarks.figures [--only NAME ...]` (`make figures`): every figure the README, docs/expect.md and
docs/sweeps.md quote, measured by running their commands as a user types them, and written as one table,
docs/figures.md: the machine, then one row per figure (name, value, when and at which commit it was measured, the
command).

Each measurement runs its commands in turn, in a fresh temporary folder holding the project's Makefile and .venv
and the slice as data/cifar10-slice, and reads its values from the runs' metrics.json (lit_cifar.run.folders), a
sweep's results.md (what docs/sweeps.md quotes of it) and the commands' wall-clock and CPU time. `--only` measures
the named measurements again and keeps the other rows (each row says when it was measured); it is refused on a
machine other than the one the table names. tests/test_figures.py fails when a page quotes a figure the table does
not hold."""

import re
import resource
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.cli import bench_parser
from benchmarks.machine import describe, machine
from lit_cifar.run.errors import UserError, exit_on_user_error, run_app
from lit_cifar.run.folders import RunRecord
from lit_cifar.run.provenance import git_state

ROOT = Path(__file__).resolve().parents[1]
FIGURES_PAGE = ROOT / "docs" / "figures.md"
SLICE = "data.root=data/cifar10-slice data.verify_checksums=false data.val_size=500"
PRINTED_RUN = "outputs/2026-12-07/19-31-46"  # the run folder the README's evaluate and predict commands name
# make's install step is taken as done: the venv is the project's, and a pyproject.toml newer than its stamp would
# otherwise install into it again in the middle of a measurement
MAKE_INSTALLED = "-o .venv/.installed"
ROW = re.compile(
    r"^\| (?P<name>[^|]+?) \| (?P<value>[^|]+?) \| (?P<measured>[^|]+?) \| (?P<commit>[^|]+?) \| `(?P<command>.+)` \|$"
)


@dataclass(frozen=True)
class Row:
    name: str  # `<measurement>: <what>`
    value: str  # as a page quotes it: 0.4243, 18.1 s
    measured: str  # UTC date and time
    commit: str
    command: str  # as the page prints it

    @property
    def measurement(self) -> str:
        return self.name.partition(":")[0]


@dataclass(frozen=True)
class Done:
    command: str  # as printed
    seconds: float  # the whole command, start-up included
    cpu_seconds: float  # the CPU time of its processes, user and system, every job's included


@dataclass(frozen=True)
class Measurement:
    name: str
    commands: tuple[str, ...]  # as the pages print them, run in turn in one folder
    figures: Callable[[Path, list[Done]], list[tuple[str, str, str]]]  # (what, value, command) from a finished folder


def accuracy(value: float) -> str:
    return f"{value:.4f}"


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def run_figures(run: RunRecord, command: str, label: str = "") -> list[tuple[str, str, str]]:
    """val/acc_best, test/acc and fit + test seconds of one run, as the README and docs/expect.md quote them."""
    metrics = run.outcome["metrics"]
    return [
        (f"{label}val/acc_best", accuracy(metrics["val/acc_best"]), command),
        (f"{label}test/acc", accuracy(metrics["test/acc"]), command),
        (f"{label}fit + test", seconds(run.outcome["wall_time_s"]), command),
    ]


def sweep_jobs(folder: Path) -> list[RunRecord]:
    return [RunRecord.load(p.parent) for p in sorted(folder.glob("multirun/*/*/*/metrics.json"))]


def results_sections(folder: Path) -> dict[str, str]:
    """The sections of the results.md the finished sweep under `folder` wrote, by title (`By setting`, ...)."""
    (results,) = folder.glob("multirun/**/results.md")
    return dict(section.split("\n", 1) for section in results.read_text().split("\n## ")[1:])


def table(section: str) -> list[dict[str, str]]:
    """The rows of a section's markdown table, each by column."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def verdict(folder: Path, done: list[Done]) -> list[tuple[str, str, str]]:
    """What docs/sweeps.md quotes of a grid with seeds: its `By setting`, `Which keys matter` and `expected best`."""
    (sweep,) = done
    sections = results_sections(folder)
    rows = [("the whole command", seconds(sweep.seconds)), ("CPU time", seconds(sweep.cpu_seconds))]
    for setting in table(sections["By setting"]):
        keys = list(setting)[: list(setting).index("n")]
        name = ",".join(f"{key}={setting[key]}" for key in keys)
        rows += [(f"{name} {column}", setting[column]) for column in ("val/acc_best", "test/acc", "vs best")]
    for value in table(sections["Which keys matter"]):
        rows.append((f"{value['key']}={value['value']} val/acc_best", value["val/acc_best"]))
        if value["effect"]:
            rows.append((f"{value['key']} effect", value["effect"]))
    expected = re.search(r"expected best of (\d+) trials (\S+); of (\d+): (\S+)", sections["Would more trials help"])
    trials, best, more, best_of_more = expected.groups()
    rows += [(f"expected best of {trials} trials", best), (f"expected best of {more} trials", best_of_more)]
    return [(what, value, sweep.command) for what, value in rows]


def first_run(folder: Path, done: list[Done]) -> list[tuple[str, str, str]]:
    train, evaluate, predict = done
    (run_dir,) = folder.glob("outputs/*/*/metrics.json")
    return [
        *run_figures(RunRecord.load(run_dir.parent), train.command),
        ("the whole command", seconds(train.seconds), train.command),
        ("evaluate", seconds(evaluate.seconds), evaluate.command),
        ("predict", seconds(predict.seconds), predict.command),
    ]


def by_job(label: Callable[[RunRecord], str]) -> Callable[[Path, list[Done]], list[tuple[str, str, str]]]:
    """The figures of a sweep: its whole command's time, and each job's, named by `label(job)`."""

    def figures(folder: Path, done: list[Done]) -> list[tuple[str, str, str]]:
        (sweep,) = done
        rows = [("the whole command", seconds(sweep.seconds), sweep.command)]
        for job in sweep_jobs(folder):
            rows += run_figures(job, sweep.command, label(job))
        return rows

    return figures


MODELS = "two_layer_fc,three_layer_convnet,week11_cnn,hw_challenge_cnn,challenge_cnn_bn,fast_cnn,resnet_lite,resnet18"
MEASUREMENTS = (
    Measurement(  # README steps 1 and 4
        "first_run",
        (
            f'make train ARGS="{SLICE} trainer.max_epochs=3"',
            f".venv/bin/python -m lit_cifar.evaluate ckpt_path={PRINTED_RUN}",
            f".venv/bin/python -m lit_cifar.predict ckpt_path={PRINTED_RUN} images=test:0-4",
        ),
        first_run,
    ),
    Measurement(  # README step 2
        "readme_sweep",
        (f'make sweep ARGS="{SLICE} model=week11_cnn trainer.max_epochs=3 optim.lr=1e-3,2e-3"',),
        by_job(lambda job: f"optim.lr={job.setting('optim.lr')} "),
    ),
    Measurement(  # docs/expect.md, "On the CIFAR-10 slice, CPU"
        "slice_grid",
        (f".venv/bin/python -m lit_cifar.train -m model={MODELS} {SLICE} trainer.max_epochs=3",),
        by_job(lambda job: f"{job.setting('model')} "),
    ),
    Measurement(  # docs/sweeps.md, "A sweep on the slice"
        "sweeps_page_grid",
        (
            ".venv/bin/python -m lit_cifar.train -m hydra/launcher=parallel hydra.launcher.n_jobs=2 trainer=cpu "
            "model=week11_cnn scheduler=none trainer.max_epochs=6 optim.lr=1e-3,3e-3 data.batch_size=64,128 "
            f"data.num_workers=0 {SLICE}",
        ),
        by_job(lambda job: f"optim.lr={job.setting('optim.lr')} data.batch_size={job.setting('data.batch_size')} "),
    ),
    Measurement(  # docs/sweeps.md, the verdict of a grid with seeds ("Confirming the winner")
        "verdict_grid",
        (
            ".venv/bin/python -m lit_cifar.train -m hydra/launcher=parallel hydra.launcher.n_jobs=2 trainer=cpu "
            "model=week11_cnn trainer.max_epochs=3 optim.lr=1e-4,3e-3 model.dropout=0,0.000001 seed=0,1,2 "
            f"data.num_workers=0 {SLICE} hydra.sweep.dir=multirun/verdict",
        ),
        verdict,
    ),
)
BY_NAME = {m.name: m for m in MEASUREMENTS}


def as_run(command: str, folder: Path) -> list[str]:
    """The words of a printed command as run in `folder`: make's install step taken as done, and the README's run
    folder replaced by the one the measurement's training wrote."""
    words = shlex.split(command)
    if words[0] == "make":
        words[1:1] = shlex.split(MAKE_INSTALLED)
    runs = sorted(folder.glob("outputs/*/*"))
    return [w.replace(PRINTED_RUN, str(runs[0].relative_to(folder))) if runs else w for w in words]


def children_cpu_seconds() -> float:
    """The CPU time, user and system, of this process's finished children and the descendants they waited for."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def measure(measurement: Measurement, data_root: Path) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix=f"figures_{measurement.name}_") as tmp:
        folder = Path(tmp)
        for name in ("Makefile", "pyproject.toml", ".venv"):
            (folder / name).symlink_to(ROOT / name)
        (folder / "data").mkdir()
        (folder / "data" / "cifar10-slice").symlink_to(data_root)
        done = []
        for command in measurement.commands:
            print(f"{measurement.name}: {command}", flush=True)
            begin, cpu_before = time.perf_counter(), children_cpu_seconds()
            finished = subprocess.run(as_run(command, folder), cwd=folder, capture_output=True, text=True)
            elapsed, cpu = time.perf_counter() - begin, children_cpu_seconds() - cpu_before
            print(finished.stdout, finished.stderr[-2000:], sep="\n", flush=True)
            if finished.returncode != 0:
                last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
                raise UserError(f"{command} exited {finished.returncode} ({last}); nothing was written")
            done.append(Done(command, elapsed, cpu))
        return measurement.figures(folder, done)


def read_table(path: Path) -> list[Row]:
    return [Row(**m.groupdict()) for m in map(ROW.match, path.read_text().splitlines()) if m and m["name"] != "name"]


def machine_line(path: Path) -> str | None:
    found = re.search(r"^Machine: (.+)$", path.read_text(), re.M) if path.is_file() else None
    return found and found.group(1)


def page(machine_text: str, rows: list[Row]) -> str:
    lines = [
        "# Measured figures",
        "",
        "Every figure the [README](../README.md), [what to expect](expect.md) and [sweeps](sweeps.md) quote, "
        "written by `.venv/bin/python -m benchmarks.figures` (`make figures`), which runs each command below as a "
        "user types it, in a fresh folder holding the slice as data/cifar10-slice ([data](data.md)). Do not edit it "
        "by hand: `--only NAME` measures some rows again and keeps the others. `tests/test_figures.py` fails when a "
        "page quotes a figure this table does not hold.",
        "",
        f"Machine: {machine_text}",
        "",
        "Times are wall-clock on that machine, whose CPU other work may have shared while they were measured: they "
        "vary between runs, several-fold while other work uses the cores. Accuracies from the fixed "
        "seed (42) are exact for this software. `fit + test` is a run's `wall_time_s` (its metrics.json); `the "
        "whole command` adds the start-up.",
        "",
        "| name | value | measured (UTC) | commit | command |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.name} | {r.value} | {r.measured} | {r.commit} | `{r.command}` |" for r in rows]
    return "\n".join(lines) + "\n"


def commit() -> str:
    state = git_state(ROOT)
    if state["git_commit"] is None:
        return "unknown"
    return state["git_commit"][:10] + (" + changes" if state["git_dirty"] else "")


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser("benchmarks.figures", __doc__)
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(BY_NAME), help="measure these again")
    with exit_on_user_error():
        args = parser.parse_args(argv)
        data_root = Path(args.data_root).resolve()
        if not (data_root / "cifar-10-batches-py").is_dir():
            raise UserError(f"--data-root={args.data_root} holds no cifar-10-batches-py/; point it at the slice")
        here = describe(machine())
        kept = []
        if args.only:
            named = machine_line(FIGURES_PAGE)
            if named is None:
                raise UserError(f"{FIGURES_PAGE} names no machine yet: measure every figure, without --only")
            if named != here:
                raise UserError(
                    f"{FIGURES_PAGE} was measured on {named}, this is {here}: measure every figure, without --only"
                )
            kept = [r for r in read_table(FIGURES_PAGE) if r.measurement not in args.only]
        fresh = []
        for measurement in MEASUREMENTS:
            if not args.only or measurement.name in args.only:
                stamp, at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), commit()
                fresh += [
                    Row(f"{measurement.name}: {what}", value, stamp, at, command)
                    for what, value, command in measure(measurement, data_root)
                ]
        rows = [r for m in MEASUREMENTS for r in (*fresh, *kept) if r.measurement == m.name]
        FIGURES_PAGE.write_text(page(here, rows))
        print(f"written to {FIGURES_PAGE}: {len(fresh)} figures measured, {len(kept)} kept")


if __name__ == "__main__":
    run_app(main)
