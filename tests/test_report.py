"""The report on sweeps and runs built on disk by hand (no training): every job's status, what a sweep held
fixed, several folders in one table, seeds grouped, and the one-line errors."""

import csv
import json
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from lit_cifar import report
from lit_cifar.reporting import plots
from lit_cifar.reporting import table as report_table
from lit_cifar.reporting.settings import mark_runs, settings
from lit_cifar.run.commands import python
from lit_cifar.run.dirs import held
from lit_cifar.run.folders import SweepRecord

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_sweep(folder: Path, *task: str) -> Path:
    """A sweep dir as Hydra leaves it: multirun.yaml with the command line's overrides and the choices."""
    folder.mkdir(parents=True)
    OmegaConf.save(
        {
            "hydra": {
                "overrides": {"task": list(task), "hydra": ["hydra/launcher=joblib", f"hydra.sweep.dir={folder}"]},
                "sweeper": {"params": {}},
                "runtime": {
                    "choices": {
                        "model": "week11_cnn",
                        "data": "cifar10",
                        "experiment": None,
                        "hydra/launcher": "joblib",
                    }
                },
            },
            "trainer": {"max_epochs": 3},
        },
        folder / "multirun.yaml",
    )
    return folder


def make_run(folder: Path, overrides: list[str], record: dict | str | None = None, epochs: int = 0) -> Path:
    """A run dir or sweep job folder: its `.hydra/` record, `epochs` validated epochs in TensorBoard (where a
    sweep keeps them when `folder` is in one) and, unless None, `metrics.json` holding `record`."""
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(overrides, folder / ".hydra" / "overrides.yaml")
    OmegaConf.save({"seed": 0, "trainer": {"max_epochs": 3}}, folder / ".hydra" / "resolved.yaml")
    if epochs:
        in_sweep = (folder.parent / "multirun.yaml").is_file()
        writer = SummaryWriter(folder.parent / "tensorboard" / folder.name if in_sweep else folder / "tensorboard")
        for epoch, acc in enumerate([0.2, 0.4, 0.3][:epochs], start=1):
            writer.add_scalar("val/acc", acc, epoch)  # against the epoch, as EpochTensorBoardLogger writes it
        writer.close()
    if record is not None:
        (folder / "metrics.json").write_text(record if isinstance(record, str) else json.dumps(record))
    return folder


def ok(val: float, test: float, dirty: bool = False, commit: str = COMMIT) -> dict:
    return {
        "status": "ok",
        "metrics": {"val/acc_best": val, "test/acc": test, "val/acc": val},
        "wall_time_s": 61.25,
        "images": {"val": 500, "test": 846},
        "git_commit": commit,
        "git_dirty": dirty,
        "seed": 42,
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """An 8-job grid in every state, and a job folder of an earlier, wider grid."""
    sweep = make_sweep(tmp_path / "multirun" / "14-05-09", "optim.lr=1,2,3,4,5,6,7,8", "data.root=/data")
    make_run(sweep / "optim.lr=1", ["optim.lr=1", "data.root=/data"], ok(0.5, 0.48), epochs=3)
    make_run(sweep / "optim.lr=2", ["optim.lr=2", "data.root=/data"], ok(0.6, 0.55, dirty=True), epochs=2)
    (sweep / "optim.lr=3").mkdir()  # failed before it wrote its .hydra/ record
    (sweep / "optim.lr=3" / "metrics.json").write_text(json.dumps({"status": "failed", "reason": "lr too high"}))
    make_run(sweep / "optim.lr=4", ["optim.lr=4", "data.root=/data"], '{"status": "ok", "metr')
    make_run(sweep / "optim.lr=5", ["optim.lr=5", "data.root=/data"], epochs=2)  # killed in its third epoch
    make_run(sweep / "optim.lr=6", ["optim.lr=6", "data.root=/data"])  # killed in its first epoch
    (sweep / "optim.lr=7").mkdir()  # killed before it wrote anything
    # optim.lr=8 never started
    make_run(sweep / "optim.lr=9", ["optim.lr=9", "data.root=/data"], ok(0.7, 0.66, commit="fedcba9876"))
    return sweep


def test_every_job_of_a_sweep_is_in_the_table_with_its_status(sweep, capsys):
    resume = "re-run its sweep's command to resume it"
    with held(sweep / "optim.lr=6"):  # a live process holds it: running
        rows = report_table.write_report(sweep)
    corrupt = sweep / "optim.lr=4" / "metrics.json"
    assert [(r["job"], r["status"], r["reason"]) for r in rows] == [
        ("optim.lr=9", "ok", ""),
        ("optim.lr=2", "ok", ""),
        ("optim.lr=1", "ok", ""),
        ("optim.lr=6", "running", "0 of 3 epochs done"),
        ("optim.lr=5", "interrupted", f"stopped after 2 of 3 epochs; {resume}"),
        ("optim.lr=7", "interrupted", f"stopped before its first epoch ended; {resume}"),
        ("optim.lr=3", "failed", "lr too high"),
        (
            "optim.lr=4",
            "unreadable",
            f"{corrupt} is not valid JSON (Unterminated string starting at: line 1 column 18 (char 17))",
        ),
        ("optim.lr=8", "pending", "never started; re-running its sweep's command runs it"),
    ]
    assert [(r["best_epoch"], r["val/acc_best"], r["test/acc"]) for r in rows[:3]] == [
        (None, 0.7, 0.66),
        (2, 0.6, 0.55),
        (2, 0.5, 0.48),
    ]
    with (sweep / "results.csv").open() as f:
        table = list(csv.reader(f))
    results = ["best_epoch", "val/acc_best", "95% interval", "vs best", "test/acc", "wall_time_s", "status", "reason"]
    assert table[0] == ["job", "optim.lr", *results]
    assert table[1][:4] == ["optim.lr=9", "9", "", "0.7"]
    assert table[1][4] == "[0.6577, 0.7399]"  # exact binomial (Clopper-Pearson): 350 of 500 images right
    assert table[1][5:] == ["best", "0.66", "61.25", "ok", ""]
    # two-proportion z-tests against 350 of 500 right: 300 of 500, p 0.00092; 250 of 500, p 1.1e-10; Holm's x2, x1
    assert [line[5] for line in table[1:4]] == ["best", "worse (p < 0.001)", "worse (p < 0.001)"]
    assert [line[0] for line in table[1:]] == [r["job"] for r in rows]
    markdown = (sweep / "results.md").read_text()
    first = markdown.split("## Runs\n\n")[1].splitlines()[2]
    assert first == "| optim.lr=9 | 9 |  | 0.7000 | [0.6577, 0.7399] | best | 0.6600 | 61.2 | ok |  |"
    assert "## By setting" not in markdown  # no two runs differ only in seed
    assert markdown in capsys.readouterr().out
    assert (sweep / "results.png").read_bytes()[:4] == b"\x89PNG"

    rows = report_table.write_report(sweep)  # the process is gone: interrupted
    assert [(r["job"], r["status"]) for r in rows][3:6] == [(f"optim.lr={n}", "interrupted") for n in (5, 6, 7)]
    assert rows[4]["reason"] == f"stopped before its first epoch ended; {resume}"


def test_results_md_starts_with_what_the_sweep_held_fixed_and_how_to_rerun_it(sweep):
    report_table.write_report(sweep)
    command = shlex.join(
        [python(), "-m", "lit_cifar.train", "-m", "hydra/launcher=joblib", "optim.lr=1,2,3,4,5,6,7,8"]
        + ["data.root=/data", f"hydra.sweep.dir={sweep}"]
    )
    header = (sweep / "results.md").read_text().split("\n## ")[0]  # up to the first table
    assert header.splitlines() == [
        f"# Sweep {sweep}",
        "",
        "- swept: optim.lr",
        "- fixed: model=week11_cnn, data=cifar10, trainer.max_epochs=3, data.root=/data",
        f"- code: git commit {COMMIT}, {COMMIT} (dirty), fedcba9876",
        "- jobs: 9 (3 ok, 3 interrupted, 1 failed, 1 unreadable, 1 pending)",
        f"- command: `{command}`; re-running it skips finished jobs, resumes interrupted ones and runs pending "
        "ones (and failed ones with `rerun_failed=true`)",
        "",
        f"code: these runs ran different code (git commits {COMMIT}, {COMMIT} (dirty), fedcba9876): runs of "
        "different code are never seeds of one setting",
        "",
        "Ranked by val/acc_best, 95% intervals: a single run: the exact binomial (Clopper-Pearson) interval of its "
        "accuracy on its 500 validation images, [low, high] (the noise of the measurement alone: seeds add the "
        "spread of training).",
        "",
        "`vs best`: each setting against the best, two-sided at the 5% level with Holm's correction across the 2 "
        "comparisons: two-proportion z-test on the evaluation images (it ignores the spread between seeds), n = 500 "
        "and 500 images (2 settings). `tied`: not told apart from the best (run more seeds to separate them: "
        f"{python()} -m lit_cifar.rerun SWEEP_DIR --top K --seeds N); `worse`: told apart; p is Holm-adjusted.",
    ]


def test_a_job_folder_passed_by_itself_says_to_rerun_its_sweep(sweep, capsys):
    (row,) = report_table.report([sweep / "optim.lr=5"], out=None)
    assert row["status"] == "interrupted" and row["best_epoch"] == 2  # its curve, from the sweep's tensorboard/
    again = report_table.sweep_command(SweepRecord.load(sweep))
    assert row["reason"] == "stopped after 2 of 3 epochs; re-run its sweep's command to resume it: " + again


def test_seeds_of_a_setting_are_grouped_with_mean_std_and_n(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "multirun" / "s", "seed=0,1,2", "optim.lr=1e-3")
    # Hydra writes a sweep job's values its own way (1e-3 as 0.001); a run records them as typed.
    make_run(sweep / "seed=0", ["seed=0", "optim.lr=0.001"], ok(0.50, 0.40))
    make_run(sweep / "seed=1", ["seed=1", "optim.lr=0.001"], ok(0.54, 0.44))
    make_run(sweep / "seed=2", ["seed=2", "optim.lr=0.001"], {"status": "failed", "reason": "NaN loss"})
    outputs = tmp_path / "outputs"
    make_run(outputs / "a", ["optim.lr=2e-3", "seed=0"], ok(0.60, 0.58))
    make_run(outputs / "b", ["optim.lr=2e-3", "seed=1", "ckpt_path=last"], ok(0.62, 0.57))  # resumed once
    make_run(outputs / "c", ["optim.lr=5e-3", "data.num_workers=4"], ok(0.30, 0.25))
    make_run(outputs / "d", ["seed=3", "optim.lr=1e-3"], ok(0.58, 0.42))

    report.main([str(sweep), str(outputs / "*"), "--out", str(tmp_path / "cmp")])  # a quoted glob
    out = capsys.readouterr().out
    markdown = (tmp_path / "cmp" / "results.md").read_text()
    assert markdown in out and f"written into {tmp_path / 'cmp'}: results.md, results.csv, results.png" in out
    assert markdown.startswith("# 7 runs from 5 folders\n\n## Sweep ")
    by_setting, runs = (markdown.split(f"## {table}\n\n")[1].split("\n## ")[0] for table in ("By setting", "Runs"))
    runs, best = runs.split("\nbest: ")
    assert ("best: " + best).splitlines() == [
        "best: optim.lr=0.002, val/acc_best=0.6100 ± 0.1271 (t, n=2)",
        # paired on seeds 0 and 1 (0.10, 0.08 better: p 0.070); one run against 2 seeds (Student's t, p 0.036);
        # Holm: 0.036 x 2 = 0.071, and 0.070 raised to it
        "  not told apart from it at 5% (Holm-adjusted p): optim.lr=0.001 0.5400 ± 0.0994 (p 0.071), optim.lr=0.005 "
        "0.3000 [0.2601, 0.3423] (p 0.071)",
        "  train it again with:",
        f"    {python()} -m lit_cifar.train optim.lr=2e-3 seed=1",  # its best run, less its ckpt_path
    ]
    assert by_setting.splitlines()[2:] == [
        "| optim.lr | n | val/acc_best | test/acc | vs best | not ok |",
        "|---|---|---|---|---|---|",
        # t(0.975, 1) = 12.706: 12.706 * 0.0141 / sqrt(2) = 0.1271; t(0.975, 2) = 4.303: 4.303 * 0.04 / sqrt(3)
        "| 0.002 | 2 | 0.6100 ± 0.1271 | 0.5750 ± 0.0635 | best |  |",
        "| 0.001 | 3 | 0.5400 ± 0.0994 | 0.4200 ± 0.0497 | tied (p 0.071) | seed=2 failed |",
        # one run: exact binomial (Clopper-Pearson), 150 of 500 images right, and 0.25 of 846
        "| 0.005 | 1 | 0.3000 [0.2601, 0.3423] | 0.2500 [0.2217, 0.2812] | tied (p 0.071) |  |",
    ]
    results = "best_epoch | val/acc_best | 95% interval | vs best | test/acc | wall_time_s | status | reason"
    header = f"| dir | seed | optim.lr | {results} |"
    assert runs.splitlines()[0] == header
    assert [line.split(" | ")[:3] for line in runs.splitlines()[2:]] == [
        [f"| {outputs / 'b'}", "1", "0.002"],
        [f"| {outputs / 'a'}", "0", "0.002"],
        [f"| {outputs / 'd'}", "3", "0.001"],
        [f"| {sweep / 'seed=1'}", "1", "0.001"],
        [f"| {sweep / 'seed=0'}", "0", "0.001"],
        [f"| {outputs / 'c'}", "42", "0.005"],  # no override: the seed its record says it ran with
        [f"| {sweep / 'seed=2'}", "2", "0.001"],
    ]
    run_b = (
        f"## Run {outputs / 'b'}\n\n- overrides: optim.lr=0.002 seed=1 ckpt_path=last\n- code: git commit {COMMIT}\n"
    )
    assert run_b in markdown
    with (tmp_path / "cmp" / "results.csv").open() as f:
        table = list(csv.reader(f))
    assert table[0] == header.strip("| ").split(" | ") and len(table) == 1 + 7
    assert (tmp_path / "cmp" / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_several_folders_print_one_table_and_write_files_only_with_out(tmp_path, capsys):
    one = make_run(tmp_path / "outputs" / "one", ["model=week11_cnn", "optim.lr=1e-3"], ok(0.5, 0.5))
    two = make_run(tmp_path / "outputs" / "two", ["model=week11_cnn", "optim.lr=1e-3", "seed=7"], epochs=1)
    rows = report_table.report([one, two], out=None)
    # the seed run one used, from its resolved config: it set none
    assert [(r["status"], r["overrides"].get("seed", "")) for r in rows] == [("ok", "0"), ("interrupted", "7")]
    command = f"{python()} -m lit_cifar.train model=week11_cnn optim.lr=1e-3 seed=7 ckpt_path=last hydra.run.dir={two}"
    assert rows[1]["reason"] == f"stopped after 1 of 3 epochs; resume it with: {command}"
    assert not list(tmp_path.rglob("results.*"))
    table = capsys.readouterr().out.split("## Runs\n\n")[1]
    columns = (
        "| dir | seed | best_epoch | val/acc_best | 95% interval | vs best | test/acc | wall_time_s | status | reason |"
    )
    assert table.splitlines()[0] == columns


@pytest.mark.parametrize("name", ["nothing", "file.txt", "nothing/*"])
def test_a_folder_that_is_no_sweep_or_run_is_a_one_line_error(tmp_path, capsys, name):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path / name)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / name} is neither a sweep dir (no multirun.yaml) nor a run dir (no .hydra/overrides.yaml); "
        "pass multirun/DATE/TIME or outputs/DATE/TIME folders, or a glob of them\n"
    )


def _rows(values: dict[tuple[str, str], float], images: int | None = None) -> list[dict]:
    """Rows of a grid as the table marks them: each run's interval (binomial, on `images`) and verdict."""
    rows = [
        {"job": f"lr={lr},bs={bs}", "dir": f"s/lr={lr},bs={bs}", "status": "ok", "val/acc_best": acc,
         "overrides": {"optim.lr": lr, "data.batch_size": bs}, "images": {"val": images} if images else {}}
        for (lr, bs), acc in values.items()
    ]  # fmt: skip
    mark_runs(settings(rows, ["optim.lr", "data.batch_size"], "val/acc_best"), "val/acc_best")
    return rows


def test_results_png_of_a_two_key_grid_is_a_heatmap_with_the_best_job_outlined():
    rows = _rows({("0.001", "64"): 0.45, ("0.003", "64"): 0.46, ("0.001", "128"): 0.44, ("0.003", "128"): 0.47})
    curves = {row["job"]: [(1, 0.3), (2, row["val/acc_best"])] for row in rows}
    figure = plots.results_figure(
        ["optim.lr", "data.batch_size"], rows, curves, "week11_cnn on cifar10, 2 epochs", "val/acc_best", set()
    )
    heatmap, lines, colour_bar = figure.axes
    assert heatmap.images[0].get_array().tolist() == [[0.45, 0.46], [0.44, 0.47]]  # batch 64 below 128
    assert [t.get_text() for t in heatmap.get_xticklabels()] == ["0.001", "0.003"]
    assert [t.get_text() for t in heatmap.get_yticklabels()] == ["64", "128"]
    # each cell's value, n and verdict: one run each without an image count has no test
    assert sorted(t.get_text() for t in heatmap.texts) == [
        "0.4400\nn=1\nuntested",
        "0.4500\nn=1\nuntested",
        "0.4600\nn=1\nuntested",
        "0.4700\nn=1\nbest",
    ]
    (outline,) = heatmap.patches
    assert outline.get_xy() == (0.5, 0.5)  # the cell of lr 0.003, batch 128
    assert figure.get_suptitle() == "week11_cnn on cifar10, 2 epochs"
    assert colour_bar.get_ylabel() == "val/acc_best"
    thick = [line.get_label() for line in lines.lines if line.get_linewidth() > 2]
    assert thick == ["lr=0.003,bs=128"]
    assert lines.get_legend().get_bbox_to_anchor().x0 > lines.get_window_extent().x1 - 1  # outside the axes


def test_the_heatmap_shows_each_cells_interval_and_dashes_the_cells_tied_with_the_best():
    # 500 images: 0.47 ± 0.0437 reaches down to 0.4263; 0.44 ± 0.0435 overlaps it, 0.38 ± 0.0425 (up to 0.4225)
    # does not.
    rows = _rows({("0.001", "64"): 0.38, ("0.003", "64"): 0.46, ("0.001", "128"): 0.44, ("0.003", "128"): 0.47}, 500)
    heatmap = plots.results_figure(["optim.lr", "data.batch_size"], rows, {}, "t", "val/acc_best", set()).axes[0]
    assert "0.4700\n[0.4255, 0.5148]\nn=1\nbest" in [t.get_text() for t in heatmap.texts]
    tied = [box.get_xy() for box in heatmap.patches if box.get_linestyle() == "--"]
    assert sorted(tied) == [(-0.5, 0.5), (0.5, -0.5)]  # 0.44 and 0.46, not 0.38
    assert [box.get_xy() for box in heatmap.patches if box.get_linestyle() == "solid"] == [(0.5, 0.5)]


def test_a_ten_by_ten_grid_has_readable_cells_and_a_legend_of_the_best_settings_only(tmp_path):
    """100 settings: each cell's text inside its cell, no two overlapping; the curves' legend names the best few and
    says how many more there are; nothing squeezed out of the figure (matplotlib warns when its layout collapses)."""
    import itertools
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    values = {(f"{a}e-4", f"{b}e-5"): 0.2 + (a * 10 + b) / 1000 for a in range(1, 11) for b in range(10)}
    rows = sorted(_rows(values, 500), key=lambda row: -row["val/acc_best"])
    curves = {row["job"]: [(1, 0.2), (2, row["val/acc_best"])] for row in rows}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = plots.results_figure(["optim.lr", "data.batch_size"], rows, curves, "t", "val/acc_best", set())
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)
    heatmap, lines = figure.axes[:2]
    assert len(heatmap.texts) == 100 and all("n=1" in text.get_text() for text in heatmap.texts)
    boxes = [text.get_window_extent(renderer) for text in heatmap.texts]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    named = [text.get_text() for text in lines.get_legend().get_texts()]
    assert named[: plots.NAMED] == [row["job"] for row in rows[: plots.NAMED]]
    assert named[plots.NAMED :] == [f"and {100 - plots.NAMED} more settings (results.md)"]
    figure.savefig(tmp_path / "results.png")


def test_the_curves_of_one_epoch_have_one_whole_tick():
    rows = _rows({("0.001", "64"): 0.45, ("0.003", "64"): 0.46})
    curves = {row["job"]: [(1, row["val/acc_best"])] for row in rows}
    lines = plots.results_figure(["optim.lr"], rows, curves, "t", "val/acc_best", set()).axes[-1]
    assert list(lines.get_xticks()) == [1]


def test_results_png_of_other_sweeps_colours_each_setting_names_the_best_in_a_title_and_logs_rates():
    rows = _rows({("0.001", "64"): 0.45, ("0.01", "64"): 0.40, ("0.001", "128"): 0.44, ("0.01", "128"): 0.47})
    for row in rows:
        row["overrides"]["model.dropout"] = "0.2"
    rows[0]["overrides"]["model.dropout"] = "0.4"  # a third compared key: panels, not a heatmap
    keys = ["optim.lr", "data.batch_size", "model.dropout"]
    figure = plots.results_figure(keys, rows, {}, "title", "val/acc_best", set())
    lr = figure.axes[0]
    assert lr.get_xscale() == "log" and figure.axes[1].get_xscale() == "linear"
    assert len({tuple(colour) for colour in lr.collections[0].get_edgecolors()}) == 4  # a colour per setting
    assert lr.get_title() == "best (ringed) 0.4700: lr=0.01,bs=128\n0 tied with it (filled); hollow: worse"
    assert not lr.texts  # named in the title, never over an error bar


def test_results_png_of_a_search_plots_each_searched_value_with_pruned_trials_crossed_and_log_keys_logged():
    """A search's two keys are sampled, not a grid: a panel per key (not a one-cell heatmap), pruned trials as
    crosses at their metric when stopped, a key searched with tag(log, …) on a log axis though it is no rate."""
    sampled = [("0.0013", "37"), ("0.0071", "90"), ("0.003", "300"), ("0.0002", "64"), ("0.0005", "45")]
    rows = _rows({**dict(zip(sampled, [0.45, 0.47, 0.41, 0.40, 0.44], strict=True)), ("0.02", "200"): 0.3,
                  ("0.05", "51"): 0.2, ("0.09", "128"): 0.1})  # fmt: skip
    for row in rows[5:]:
        row["status"] = "pruned"
    figure = plots.results_figure(
        ["optim.lr", "data.batch_size"], rows, {}, "title", "val/acc_best", {"data.batch_size"}, search=True
    )
    lr, batch, _ = figure.axes
    assert lr.get_xscale() == batch.get_xscale() == "log"
    assert not lr.images and batch.get_xlabel() == "data.batch_size (log)"
    for panel in (lr, batch):
        (complete, pruned) = panel.collections[:2]
        assert sorted(complete.get_offsets()[:, 1].tolist()) == [0.40, 0.41, 0.44, 0.45, 0.47]
        assert sorted(pruned.get_offsets()[:, 1].tolist()) == [0.1, 0.2, 0.3]
        assert [t.get_text() for t in panel.get_legend().get_texts()] == ["pruned"]  # settings: their own colours
        assert len(panel.get_xticks()) < 8  # the axis's own ticks, not every sampled value


def test_results_png_of_a_two_key_grid_with_a_failed_job_is_not_a_heatmap_with_a_hole():
    rows = _rows({("0.001", "64"): 0.45, ("0.003", "64"): 0.46, ("0.001", "128"): 0.44, ("0.003", "128"): 0.47})
    rows[1]["status"], rows[1]["val/acc_best"] = "failed", None
    figure = plots.results_figure(["optim.lr", "data.batch_size"], rows, {}, "title", "val/acc_best", set())
    assert len(figure.axes) == 3 and not figure.axes[0].images


def test_the_keys_a_search_draws_on_a_log_scale_are_read_from_its_multirun_yaml(tmp_path):
    hydra = {
        "sweeper": {"params": {"optim.lr": "tag(log, interval(1e-4, 1e-1))", "model.dropout": "interval(0, 0.5)"}},
        "overrides": {"task": ["data.batch_size=tag(log, int(interval(32, 512)))", "trainer.max_epochs=3"]},
    }
    OmegaConf.save({"hydra": hydra}, tmp_path / "multirun.yaml")
    assert SweepRecord.load(tmp_path).log_scaled_keys == {"optim.lr", "data.batch_size"}
