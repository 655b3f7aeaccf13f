"""What a command prints where its output is not a terminal (a pipe, a file, a batch job's log): only lines a user
reads or acts on, each once, and no progress bar. The commands run in this process, their streams captured (not a
terminal), with warnings shown as Python shows them to a user (the other in-process runs ignore them all)."""

import re
import warnings
from pathlib import Path

import pytest
from conftest import run_cli, tiny_cifar_overrides

CONFIG_LINE = re.compile(r"^  \w+( \(\w+\))? +\S")  # the start's summary of the config, under its first log line
PRINTED = re.compile(r"^(train with: \S*python -m |([\w.]+=\S+ )+\(plot: )")  # lit_cifar.tune's result, on stdout
TABLE_LINE = re.compile(r"^[┏┃┡│└]")  # the model summary and the test results (Rich's tables)
SUMMARY_TOTAL = re.compile(
    r"^(Trainable params|Non-trainable params|Total params|Total estimated model params size \(MB\)"
    r"|Modules in train mode|Modules in eval mode): \S(.*\S)?$"
)
NEVER = ("LeafSpec", "litlogger", "Tip", "FLOPs", "srun", "TPU", "weights_only", ".lr_find_", "Finding best initial lr")
TINY_SPLIT = "the validation split holds fewer"  # the tiny fixture's warning
# Lightning's warnings that a user can act on, where these tests' tiny runs give them
ACTIONABLE_WARNINGS = (
    "does not have many workers",  # data.num_workers=0
    "is smaller than the logging interval",  # 5 batches an epoch, trainer.log_every_n_steps=10
    "GPU available but not used",  # trainer=cpu on a machine with a GPU
)


@pytest.fixture
def user_warnings(monkeypatch) -> list[warnings.WarningMessage]:
    """The warnings a user's console would show during the commands run in this test: Python's default filters in
    place of run_in_process's `simplefilter("ignore")`, each warning recorded instead of printed."""
    simplefilter = warnings.simplefilter

    def python_defaults(action: str, category: type[Warning] = Warning, *args, **kwargs) -> None:
        if action != "ignore" or category is not Warning or args or kwargs:
            return simplefilter(action, category, *args, **kwargs)
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
        for ignored in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=ignored, append=True)

    monkeypatch.setattr(warnings, "simplefilter", python_defaults)
    with warnings.catch_warnings(record=True) as recorded:
        yield recorded


def console_lines(output: str) -> list[tuple[str, str]]:
    """Every line printed, as (kind, text): a table's, the config's, a printed result's, else a log line (its
    message alone: the console shows no time, module or level)."""
    assert "\r" not in output, "a progress bar was drawn: " + output[output.index("\r") - 200 :][:400]
    lines = []
    for line in output.splitlines():
        if CONFIG_LINE.match(line):
            lines.append(("config", line))
        elif PRINTED.match(line):
            lines.append(("printed", line))
        elif TABLE_LINE.match(line):
            lines.append(("table", line))
        elif SUMMARY_TOTAL.match(line):
            lines.append(("total", line))
        else:
            lines.append(("log", line))
    return lines


def assert_quiet(proc, recorded: list[warnings.WarningMessage]) -> list[str]:
    """The checks every command's output passes; returns its log lines (`logger: message`)."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    for noise in NEVER:
        assert noise not in output, noise
    lines = console_lines(output)
    assert not [text for kind, text in lines if kind == "config"], output  # the config's groups: in the log file
    logged = [text for kind, text in lines if kind == "log"]
    assert len(logged) == len(set(logged)), logged  # each once
    assert "INFO: " not in output  # the format of the console handler the `lightning` package adds of its own
    # not runpy's, about a command's module that an earlier test imported: a fresh process has it only once
    shown = [str(w.message) for w in recorded if "runpy" not in w.filename]
    assert [m for m in shown if not any(a in m for a in ACTIONABLE_WARNINGS)] == [], shown
    return logged


def test_a_run_and_its_resume_print_each_line_once_and_no_bar_nor_noise(cifar_root, tmp_path, user_warnings):
    run_dir = tmp_path / "run"
    args = [*tiny_cifar_overrides(cifar_root)[:-1], "model=week11_cnn", f"hydra.run.dir={run_dir}"]  # the default bar
    first = run_cli("lit_cifar.train", *args, "trainer.max_epochs=2")
    logged = assert_quiet(first, user_warnings)
    kinds = [
        re.sub(r"\d+(\.\d+)?(e[+-]\d+)?", "N", line.replace(str(run_dir), "RUN"))
        for line in logged
        if not line.startswith(TINY_SPLIT)
    ]
    assert [re.sub(r"GPU available: .*", "GPU available: …", k) for k in kinds] == [
        "seed N, run dir RUN; the whole config is in .hydra/resolved.yaml",
        "GPU available: …",
        "model: WeekNCNN, N K parameters, N MB",  # the layers' table: in train.log
        "epoch N/N  train loss N acc N  val loss N acc N (best N)  lr N  N s",
        "epoch N/N  train loss N acc N  val loss N acc N (best N)  lr N  N s",
        "Restoring states from the checkpoint path at RUN/checkpoints/epoch_N.ckpt",
        "val/acc_best=N test/acc=N (ok, tested epoch_N.ckpt), run dir RUN",
    ]
    assert [line[:9] for line in logged if line.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    assert "test/acc" in first.stdout  # the test's table

    user_warnings.clear()
    resumed = run_cli("lit_cifar.train", *args, "trainer.max_epochs=3", "ckpt_path=last")  # into its own folder
    logged = assert_quiet(resumed, user_warnings)
    assert [line[:9] for line in logged if line.startswith("epoch ")] == ["epoch 3/3"]
    assert sum("Restoring states from the checkpoint path at" in line for line in logged) == 2  # the resume, the test


def test_the_lr_finder_prints_each_line_once_and_no_bar(cifar_root, tmp_path, user_warnings):
    run_dir = tmp_path / "tune"
    proc = run_cli(
        "lit_cifar.tune", *tiny_cifar_overrides(cifar_root), "model=week11_cnn", "tune.steps=20",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    logged = [line for line in assert_quiet(proc, user_warnings) if not line.startswith(TINY_SPLIT)]
    assert [line for line in logged if "GPU available" in line] == logged[:1]
    assert re.search(r"^optim.lr=\S+ \(plot: .*lr_find.png\)$", proc.stdout, re.M)
    assert not [line for line in logged if "stopped" in line]  # the finder's own max_steps
    assert not list(Path(run_dir).glob(".lr_find_*"))


HYDRA_PREFIX = re.compile(r"^\[20\d\d-\d\d-\d\d [\d:,]+\]\[")


def test_the_console_shows_messages_and_the_log_file_keeps_times_and_modules(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]
    proc = run_cli("lit_cifar.train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = (proc.stdout + proc.stderr).splitlines()
    assert not [line for line in console if HYDRA_PREFIX.match(line)], console
    assert [line[:9] for line in console if line.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    assert [line for line in console if line.startswith("seed ")] == [
        f"seed 42, run dir {run_dir}; the whole config is in .hydra/resolved.yaml"
    ]
    assert not [line for line in console if line.startswith(("  model (", "  optim ("))]  # the rest: in the file

    logged = (run_dir / "train.log").read_text()
    assert re.search(r"^\[20[\d :,-]+\]\[lit_cifar\.callbacks\.epoch_log\]\[INFO\] - epoch 2/2 ", logged, re.M)
    assert "\n  model (week11_cnn)" in logged  # the whole config summary


def test_a_run_without_the_progress_bar_callback_gets_no_bar_of_lightnings_own(cifar_root, tmp_path):
    """`callbacks.progress_bar=null` means no bar: Lightning would add its own, which writes into a pipe too."""
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=1"]
    assert "callbacks.progress_bar=null" in args
    proc = run_cli("lit_cifar.train", *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "it/s" not in output, output[-2000:]  # a bar's speed (the test's table stays)
