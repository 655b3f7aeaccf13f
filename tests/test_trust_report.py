"""A table counts each run once and nothing in a run's record bends its ranking: copies, globs and links of one run,
runs of one seed, sweeps that optimized other metrics or ran other data or code, metrics that are no numbers, and an
interval that cannot collapse to nothing. Folders built by hand with known metrics.json (no training), through
`python -m lit_cifar.report`; the image counts a ddp run records, through `python -m lit_cifar.train`."""

import json
import math
import shutil
import uuid
from pathlib import Path

import pytest
from conftest import run_cli, tiny_cifar_overrides
from omegaconf import OmegaConf
from test_report import COMMIT, make_run, make_sweep

from lit_cifar.reporting.sweep_report import SweepReport
from lit_cifar.run import record as run_record
from lit_cifar.run.dirs import lock


def result(val: float | str | None, test: float = 0.5, images: int = 500, commit: str = COMMIT) -> dict:
    metrics = {"test/acc": test} if val is None else {"val/acc_best": val, "test/acc": test}
    return {"status": "ok", "metrics": metrics, "images": {"val": images, "test": 846}, "git_commit": commit}


def started(folder: Path) -> Path:
    """Give a folder built by hand the id a run writes when it starts."""
    (folder / ".hydra" / "run_id").write_text(uuid.uuid4().hex + "\n")
    return folder


def report(*args: str | Path) -> tuple[int, str, str]:
    done = run_cli("lit_cifar.report", *map(str, args))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def runs_table(out: str) -> list[str]:
    """The rows of the `## Runs` table."""
    return out.split("## Runs\n\n")[1].split("\n\n")[0].splitlines()[2:]


def cells(line: str) -> list[str]:
    return line[2:-2].split(" | ")


def by_setting(out: str) -> list[str]:
    return out.split("## By setting\n\n")[1].split("\n## ")[0].strip().splitlines()[4:]


def notes(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("counted once", "one observation", "code:"))]


# 1. A run is counted once.


def test_a_sweep_passed_with_a_glob_of_its_own_job_folders_counts_each_run_once(tmp_path):
    sweep = make_sweep(tmp_path / "S", "optim.lr=1e-3,2e-3")
    for lr, acc in (("0.001", 0.6), ("0.002", 0.4)):
        started(make_run(sweep / f"optim.lr={lr}", [f"optim.lr={lr}"], result(acc)))
    code, out, _ = report(sweep, f"{sweep}/optim*")
    assert code == 0
    assert len(runs_table(out)) == 2 and "± 0.0000" not in out and "## By setting" not in out
    assert notes(out) == [
        f"counted once (the same run id, or the same folder): {sweep / 'optim.lr=0.001'} passed twice; "
        f"{sweep / 'optim.lr=0.002'} passed twice"
    ]


def test_a_copied_run_folder_and_a_link_to_one_are_the_same_run(tmp_path):
    outputs = tmp_path / "outputs"
    started(make_run(outputs / "a", ["optim.lr=1e-3", "seed=0"], result(0.6)))
    shutil.copytree(outputs / "a", outputs / "b")
    make_run(outputs / "c", ["optim.lr=2e-3", "seed=0"], result(0.4))  # recorded before runs had an id
    (outputs / "d").symlink_to(outputs / "c")
    code, out, _ = report(f"{outputs}/*")
    assert code == 0
    assert [cells(line)[0] for line in runs_table(out)] == [str(outputs / "a"), str(outputs / "c")]
    assert "± 0.0000" not in out and "## By setting" not in out
    assert notes(out) == [
        f"counted once (the same run id, or the same folder): {outputs / 'b'} is a copy of {outputs / 'a'}; "
        f"{outputs / 'd'} is {outputs / 'c'} (a link)"
    ]
    assert out.startswith("# 2 runs from 2 folders\n")


def test_a_copy_that_trained_on_is_a_run_of_its_own(tmp_path):
    outputs = tmp_path / "outputs"
    started(make_run(outputs / "a", ["optim.lr=1e-3", "seed=0"], result(0.6)))
    shutil.copytree(outputs / "a", outputs / "b")
    (outputs / "b" / "metrics.json").write_text(json.dumps(result(0.7)))  # trained on since it was copied
    code, out, _ = report(outputs / "a", outputs / "b")
    assert code == 0 and not [line for line in notes(out) if line.startswith("counted once")]
    assert sorted(cells(line)[0] for line in runs_table(out)) == [str(outputs / "a"), str(outputs / "b")]


def test_two_runs_of_one_setting_with_the_same_seed_are_one_observation(tmp_path):
    outputs = tmp_path / "outputs"
    started(make_run(outputs / "a", ["optim.lr=1e-3", "seed=0"], result(0.60, test=0.50)))
    started(make_run(outputs / "b", ["optim.lr=1e-3", "seed=0"], result(0.62, test=0.52)))  # the same seed again
    started(make_run(outputs / "c", ["optim.lr=1e-3", "seed=1"], result(0.58, test=0.48)))
    started(make_run(outputs / "d", ["optim.lr=2e-3", "seed=0"], result(0.40)))
    code, out, _ = report(f"{outputs}/*")
    assert code == 0 and len(runs_table(out)) == 4  # every run is shown
    # seed 0 is one value, 0.61, beside seed 1's 0.58: mean 0.595, sd 0.02121, 12.706 * 0.02121 / sqrt(2) = 0.1906
    # (and of test/acc 0.51 and 0.48)
    assert by_setting(out)[0] == "| 0.001 | 2 | 0.5950 ± 0.1906 | 0.4950 ± 0.1906 | best |  |"
    assert notes(out) == [
        "one observation: runs of one setting with the same seed should give the same numbers, so each such group "
        f"counts as one seed, by its mean: {outputs / 'b'}, {outputs / 'a'} (seed=0)"
    ]


# 2. One ranking ranks one metric, on one set of images; runs of other code are not seeds of one setting.


def test_sweeps_that_optimized_different_metrics_are_refused_in_one_line(tmp_path):
    loss, acc = make_sweep(tmp_path / "loss", "optim.lr=1e-3"), make_sweep(tmp_path / "acc", "optim.lr=2e-3")
    config = OmegaConf.load(loss / "multirun.yaml")
    config.optimized_metric = "val/loss"
    OmegaConf.save(config, loss / "multirun.yaml")
    make_run(loss / "optim.lr=0.001", ["optim.lr=0.001"], result(0.6) | {"metrics": {"val/loss": 1.2}})
    make_run(acc / "optim.lr=0.002", ["optim.lr=0.002"], result(0.5))
    code, _, err = report(loss, acc)
    assert code == 2
    assert err == (
        f"error: these sweeps optimized different metrics, which one ranking cannot serve: val/loss in {loss}, "
        f"val/acc_best in {acc}; report each metric's sweeps apart\n"
    )


@pytest.mark.parametrize(
    ("other", "differs"),
    [
        ({"images": 1000}, "val images: 500 in {a}, 1000 in {b}"),
        (
            {"_target_": "lit_cifar.data.chars.CharsDataModule"},
            "data: CIFAR10DataModule in {a}, CharsDataModule in {b}",
        ),
        ({"val_size": 0}, "data.val_size: 500 in {a}, 0 in {b}"),
    ],
)
def test_runs_measured_on_different_data_are_refused_in_one_line_naming_the_folders(tmp_path, other, differs):
    outputs = tmp_path / "outputs"
    data = {"_target_": "lit_cifar.data.cifar10.CIFAR10DataModule", "val_size": 500, "split_seed": 0}
    for name, changes in (("a", {}), ("b", other)):
        record = result(0.5, images=changes.get("images", 500))
        folder = make_run(outputs / name, ["optim.lr=1e-3", f"seed={int(name == 'b')}"], record)
        resolved = {
            "seed": 0,
            "trainer": {"max_epochs": 3},
            "data": data | {key: value for key, value in changes.items() if key != "images"},
        }
        OmegaConf.save(resolved, folder / ".hydra" / "resolved.yaml")
    code, _, err = report(outputs / "a", outputs / "b")
    assert code == 2
    assert err == (
        "error: these runs were measured on different data, which one ranking would mix: "
        f"{differs.format(a=outputs / 'a', b=outputs / 'b')}; report them apart\n"
    )


def test_a_sweep_whose_jobs_ran_different_data_ends_with_one_line_naming_them(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "S", "data.val_size=500,1000")
    for size in (500, 1000):
        make_run(sweep / f"data.val_size={size}", [f"data.val_size={size}"], result(0.5, images=size))
    callback = SweepReport()
    callback.sweep_dir_lock = lock(sweep, what="sweep")  # as the sweep's start holds it
    with pytest.raises(SystemExit) as stop:  # the table at the sweep's end
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "error: these runs were measured on different data, which one ranking would mix: val images: 1000 in "
        f"{sweep / 'data.val_size=1000'}, 500 in {sweep / 'data.val_size=500'}; report them apart\n"
    )


def test_runs_of_different_code_are_settings_of_their_own_and_the_table_says_so(tmp_path):
    outputs = tmp_path / "outputs"
    started(make_run(outputs / "a", ["optim.lr=1e-3", "seed=0"], result(0.60)))
    started(make_run(outputs / "b", ["optim.lr=1e-3", "seed=1"], result(0.62, commit="fedcba9876")))
    started(make_run(outputs / "c", ["optim.lr=1e-3", "seed=2"], result(0.58, commit="fedcba9876")))
    code, out, _ = report(f"{outputs}/*")
    assert code == 0
    assert notes(out) == [
        f"code: these runs ran different code (git commits {COMMIT}, fedcba9876): runs of different code are never "
        "seeds of one setting (the code column)"
    ]
    header = out.split("## Runs\n\n")[1].splitlines()[0]
    assert header.startswith("| dir | seed | code | best_epoch |")
    # fedcba9876: 0.62 and 0.58 over n = 2; the COMMIT run alone, with its binomial interval
    assert [cells(line)[:3] for line in by_setting(out)] == [
        ["fedcba9876", "2", "0.6000 ± 0.2541"],
        [COMMIT, "1", "0.6000 [0.5556, 0.6432]"],
    ]


# 3. A metric that is no finite number fails its run; what ranks a table is whether the runs had a validation split.


def test_a_metric_that_is_no_finite_number_fails_its_run_and_is_never_best(tmp_path):
    sweep = make_sweep(tmp_path / "S", "optim.lr=1,2,3,4,5")
    values = {"1": float("nan"), "2": float("inf"), "3": "0.9", "4": 0.5, "5": [0.9]}
    for lr, value in values.items():
        make_run(
            sweep / f"optim.lr={lr}", [f"optim.lr={lr}"], json.dumps(result(value))
        )  # NaN, Infinity as Python writes them
    code, out, _ = report(sweep)
    assert code == 0
    rows = [cells(line) for line in runs_table(out)]
    assert [(row[0], row[-2], row[-1]) for row in rows] == [
        ("optim.lr=4", "ok", ""),
        ("optim.lr=1", "failed", "val/acc_best is NaN, not a finite number"),
        ("optim.lr=2", "failed", "val/acc_best is Infinity, not a finite number"),
        ("optim.lr=3", "failed", 'val/acc_best is "0.9", not a finite number'),
        ("optim.lr=5", "failed", "val/acc_best is [0.9], not a finite number"),
    ]
    assert "\nbest: optim.lr=4, val/acc_best=0.5000 [0.4553, 0.5447] (exact binomial, 500 images)" in out


def test_an_accuracy_outside_zero_to_one_fails_its_run_and_is_never_best(tmp_path):
    sweep = make_sweep(tmp_path / "S", "optim.lr=1,2,3")
    for lr, value in (("1", 1.7), ("2", -0.1), ("3", 0.5)):
        make_run(sweep / f"optim.lr={lr}", [f"optim.lr={lr}"], result(value))
    code, out, _ = report(sweep)
    assert code == 0
    rows = [cells(line) for line in runs_table(out)]
    assert [(row[0], row[-2], row[-1]) for row in rows] == [
        ("optim.lr=3", "ok", ""),
        ("optim.lr=1", "failed", "val/acc_best is 1.7, which no accuracy can be"),
        ("optim.lr=2", "failed", "val/acc_best is -0.1, which no accuracy can be"),
    ]


def test_a_run_without_the_ranked_metric_fails_and_does_not_switch_the_table_to_test_accuracy(tmp_path):
    sweep = make_sweep(tmp_path / "S", "optim.lr=1,2")
    make_run(sweep / "optim.lr=1", ["optim.lr=1"], result(None, test=0.9))
    make_run(sweep / "optim.lr=2", ["optim.lr=2"], result(0.5, test=0.4))
    code, out, _ = report(sweep)
    assert code == 0
    assert "Ranked by val/acc_best" in out and "ranked by test/acc" not in out
    rows = [cells(line) for line in runs_table(out)]
    assert [(row[0], row[-2], row[-1]) for row in rows] == [
        ("optim.lr=2", "ok", ""),
        ("optim.lr=1", "failed", "no val/acc_best in its metrics.json, which this table ranks by"),
    ]


def test_runs_without_a_validation_split_rank_by_test_accuracy(tmp_path):
    sweep = make_sweep(tmp_path / "S", "optim.lr=1,2")
    for lr, acc in (("1", 0.9), ("2", 0.4)):
        folder = make_run(
            sweep / f"optim.lr={lr}", [f"optim.lr={lr}"], result(None, test=acc) | {"images": {"test": 846}}
        )
        OmegaConf.save({"trainer": {"max_epochs": 3}, "data": {"val_size": 0}}, folder / ".hydra" / "resolved.yaml")
    code, out, _ = report(sweep)
    assert code == 0 and "Ranked by test/acc" in out and "selects on the test set" in out
    assert [cells(line)[-2] for line in runs_table(out)] == ["ok", "ok"]


def test_a_run_whose_metric_is_no_finite_number_is_recorded_as_failed(tmp_path):
    record = {"status": "ok", "metrics": {"val/acc_best": 0.5, "val/loss": float("nan")}, "images": {"val": 500}}
    written = run_record.write_outcome(tmp_path, record)
    on_disk = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=pytest.fail)  # no NaN in the file
    assert written == on_disk
    assert on_disk["status"] == "failed" and on_disk["reason"] == "val/loss is NaN, not a finite number"
    assert on_disk["metrics"] == {"val/acc_best": 0.5, "val/loss": None}


# 4. A single run's interval is the exact binomial one: it never collapses.


def test_a_single_run_at_accuracy_one_gets_an_exact_binomial_interval_and_ties_with_what_it_reaches(tmp_path):
    sweep = make_sweep(tmp_path / "S", "optim.lr=1,2,3")
    for lr, acc in (("1", 1.0), ("2", 0.994), ("3", 0.97)):
        make_run(sweep / f"optim.lr={lr}", [f"optim.lr={lr}"], result(acc))
    code, out, _ = report(sweep)
    assert code == 0 and "± 0.0000" not in out
    # Clopper-Pearson on 500 images: 500 right [0.9926, 1]; 497 [0.9826, 0.9988]; 485 [0.9510, 0.9831]. The
    # two-proportion z-test against 500 of 500: 497, p 0.083; 485, p 0.0001, twice that after Holm's correction.
    assert [cells(line)[4:6] for line in runs_table(out)] == [
        ["[0.9926, 1.0000]", "best"],
        ["[0.9826, 0.9988]", "tied (p 0.083)"],
        ["[0.9510, 0.9831]", "worse (p < 0.001)"],
    ]
    assert "\nbest: optim.lr=1, val/acc_best=1.0000 [0.9926, 1.0000] (exact binomial, 500 images)" in out
    assert (
        "a single run: the exact binomial (Clopper-Pearson) interval of its accuracy on its 500 validation images"
        in out
    )
    assert "| best_epoch | val/acc_best | 95% interval | vs best |" in out


# 5. The images a run records are those its accuracy was measured on, over every rank.


@pytest.mark.slow
def test_a_ddp_run_records_the_images_every_rank_measured_and_keeps_its_id_when_extended(tmp_path, cifar_root):
    """3 CPU processes on 20 validation and 40 test images: Lightning's DistributedSampler gives each rank
    ceil(N / 3) of them (padding with repeats), 7 and 14, so accuracy is computed on 21 and 42."""
    run_dir = tmp_path / "run"
    args = [
        *tiny_cifar_overrides(cifar_root),
        "model=two_layer_fc",
        "model.hidden=8",
        "+trainer.strategy=ddp",
        "trainer.devices=3",
    ]
    done = run_cli("lit_cifar.train", *args, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok" and record["device"]["count"] == 3
    measured = {"val": 3 * math.ceil(20 / 3), "test": 3 * math.ceil(40 / 3)}
    assert record["images"] == measured
    started_as = (run_dir / ".hydra" / "run_id").read_text()

    more = run_cli("lit_cifar.train", *args, "trainer.max_epochs=2", "ckpt_path=last", f"hydra.run.dir={run_dir}",
                   cwd=tmp_path)  # fmt: skip
    assert more.returncode == 0, more.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["start"] == "extended" and record["images"] == measured
    assert (run_dir / ".hydra" / "run_id").read_text() == started_as  # the same run, gone on


def test_a_report_into_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    run = make_run(tmp_path / "outputs" / "a", ["optim.lr=1e-3"], result(0.6))
    (tmp_path / "file").write_text("not a folder")
    for out in ("/proc/lit_cifar_report", str(tmp_path / "file" / "report")):
        code, _, err = report(run, "--out", out)
        (line,) = err.splitlines()
        assert code == 2 and line.startswith(f"error: cannot make the folder {out} for the report (")
        assert line.endswith("); pass another --out"), line
