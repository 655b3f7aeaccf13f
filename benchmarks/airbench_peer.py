"""Bench figure 6: `experiment=fast94` through the command line against airbench94's own `train94`, on the same
data, epochs, batch size and widths, seed by seed in turn, each run in a fresh process.

Both sides are timed over the training loop alone, as airbench times it (its CUDA events around each epoch's
steps, without its whitening set-up, evaluation or start-up); both report test accuracy with their test-time
augmentation. airbench hard-codes CUDA and fp16: on a CPU only that plumbing is patched (modules and tensors stay
on the CPU in float32, its CUDA events become wall-clock ones); on a GPU it runs as published."""

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import lightning.pytorch as pl
import torch

from lit_cifar.data.cifar10 import CIFAR10DataModule
from lit_cifar.run.errors import UserError

CLOCK_FILE = "training_clock.json"


class TrainingClock(pl.Callback):
    """Seconds from the first training step to the end of the last one (the device synchronized at both ends),
    written to `<run dir>/training_clock.json`; added to the fast94 run with `+callbacks.training_clock=…`."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _synchronize(pl_module.device)
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _synchronize(pl_module.device)
        seconds = time.perf_counter() - self.start
        (Path(trainer.default_root_dir) / CLOCK_FILE).write_text(json.dumps({"train_s": seconds}))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_airbench_data(data_root: str, folder: Path) -> None:
    """The CIFAR-10 copy at `data_root` as airbench's CifarLoader reads it: `cifar10/{train,test}.pt`, uint8 N×H×W×C."""
    dm = CIFAR10DataModule(
        root=data_root, download=False, verify_checksums=False, num_classes=10, in_channels=3, image_size=32,
        mean=[0.0] * 3, std=[1.0] * 3,
    )  # fmt: skip
    splits = dm.load()
    (folder / "cifar10").mkdir(parents=True)
    for split, name in (("train", "train.pt"), ("test", "test.pt")):
        images, labels = splits[split]
        record = {"images": images.permute(0, 2, 3, 1).contiguous(), "labels": labels, "classes": dm.class_names}
        torch.save(record, folder / "cifar10" / name)


class _WallClockEvent:
    """torch.cuda.Event's timing interface on the host clock, for airbench on a CPU."""

    def __init__(self, **options) -> None:
        self.at = 0.0

    def record(self) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, end: "_WallClockEvent") -> float:
        return 1e3 * (end.at - self.at)


@contextmanager
def _airbench_timings(on_cpu: bool):
    """The milliseconds airbench's own timing events measure, in order (its whitening set-up, then each epoch), and
    on a CPU the device and dtype plumbing patched as the module docstring says."""
    from airbench import utils

    measured: list[float] = []
    event = _WallClockEvent if on_cpu else torch.cuda.Event

    class RecordingEvent(event):
        def elapsed_time(self, end) -> float:
            measured.append(super().elapsed_time(end))
            return measured[-1]

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(torch.cuda, "Event", RecordingEvent))
        if on_cpu:
            defaults = utils.CifarLoader.__init__.__defaults__
            stack.enter_context(mock.patch.object(utils.CifarLoader.__init__, "__defaults__", (*defaults[:-1], "cpu")))
            stack.enter_context(mock.patch.object(torch.nn.Module, "cuda", lambda self, device=None: self))
            stack.enter_context(mock.patch.object(torch.nn.Module, "half", lambda self: self))
            stack.enter_context(mock.patch.object(torch.Tensor, "half", lambda self, *a, **k: self.float()))
            stack.enter_context(mock.patch.object(torch.cuda, "synchronize", lambda device=None: None))
        yield measured


def run_airbench(folder: str, seed: int, epochs: int, batch_size: int, widths: list[int], on_cpu: bool) -> dict:
    """airbench94's `train94` on the data in `folder` (in a process of its own: it changes the working dir)."""
    from airbench import lib_airbench94, utils

    os.chdir(folder)  # airbench reads its test set from ./cifar10/test.pt
    torch.manual_seed(seed)
    block_widths = dict(zip(("block1", "block2", "block3"), widths, strict=True))
    with _airbench_timings(on_cpu) as measured:
        loader = utils.CifarLoader(
            "cifar10", train=True, batch_size=batch_size, aug=lib_airbench94.hyp["aug"], altflip=True
        )
        model = lib_airbench94.train94(
            loader, epochs=epochs, make_net=lambda: lib_airbench94.make_net94(widths=block_widths), verbose=False
        )
        accuracy = utils.evaluate(model, utils.CifarLoader("cifar10", train=False, batch_size=2000), tta_level=2)
    return {"test_acc": accuracy, "train_s": sum(measured[1:]) / 1e3}  # measured[0]: the whitening set-up


def run_recipe(args, experiment: str, epochs: int, seed: int, run_dir: Path) -> dict:
    """`python -m lit_cifar.train experiment=<experiment> …` on the same data, epochs, batch size and widths."""
    command = [
        sys.executable, "-m", "lit_cifar.train", f"experiment={experiment}",
        f"data.root={Path(args.data_root).resolve()}", "data.download=false",
        f"data.verify_checksums={args.verify_checksums}", "data.val_size=0",
        f"data.batch_size={args.airbench_batch_size}", f"model.widths=[{','.join(map(str, args.airbench_widths))}]",
        f"trainer.max_epochs={epochs}", f"trainer={'gpu' if args.device.type == 'cuda' else 'cpu'}",
        f"seed={seed}", f"hydra.run.dir={run_dir}",
        f"+callbacks.training_clock._target_={TrainingClock.__module__}.{TrainingClock.__name__}",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"the {experiment} run failed: {' '.join(command)}\n{proc.stderr[-2000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    return {"test_acc": metrics["test/acc"], "train_s": json.loads((run_dir / CLOCK_FILE).read_text())["train_s"]}


def mean_and_std(runs: list[dict], side: str) -> dict:
    summary = {}
    for key in ("test_acc", "train_s"):
        values = [run[side][key] for run in runs]
        summary[f"{side}_{key}"] = statistics.mean(values)
        summary[f"{side}_{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return summary


def one_length(args, folder: Path, epochs: int) -> dict:
    """At `epochs`: each seed's airbench run, then its fast94 run; means, standard deviations and ratios."""
    spawn = multiprocessing.get_context("spawn")
    runs = []
    for seed in args.airbench_seeds:
        with spawn.Pool(1) as pool:
            airbench = pool.apply(
                run_airbench,
                (str(folder), seed, epochs, args.airbench_batch_size, args.airbench_widths, args.device.type == "cpu"),
            )
        ours = run_recipe(args, "fast94", epochs, seed, Path(args.tmp) / f"fast94-{epochs}-seed{seed}")
        runs.append({"seed": seed, "airbench": airbench, "fast94": ours})
        print(
            f"  {epochs} epochs, seed {seed}: airbench {airbench['test_acc']:.4f} in {airbench['train_s']:.1f}s, "
            f"fast94 {ours['test_acc']:.4f} in {ours['train_s']:.1f}s",
            flush=True,
        )
    summary = {**mean_and_std(runs, "airbench"), **mean_and_std(runs, "fast94")}
    return {
        "epochs": epochs,
        "runs": runs,
        **summary,
        "acc_diff_points": 100 * (summary["fast94_test_acc"] - summary["airbench_test_acc"]),
        "time_ratio": summary["fast94_train_s"] / summary["airbench_train_s"],
    }


def muon_row(args, lengths: list[dict]) -> dict:
    """experiment=fast94_muon at `--muon-epochs`, seed by seed, against airbench94's runs at the measured epoch count
    nearest its own 9.9."""
    runs = []
    for seed in args.airbench_seeds:
        ours = run_recipe(args, "fast94_muon", args.muon_epochs, seed, Path(args.tmp) / f"muon-seed{seed}")
        runs.append({"seed": seed, "fast94_muon": ours})
        print(f"  fast94_muon {args.muon_epochs} epochs, seed {seed}: {ours['test_acc']:.4f} in {ours['train_s']:.1f}s")
    against = min(lengths, key=lambda length: abs(length["epochs"] - 9.9))
    summary = mean_and_std(runs, "fast94_muon")
    return {
        "epochs": args.muon_epochs,
        "runs": runs,
        **summary,
        "against_epochs": against["epochs"],
        "acc_diff_points": 100 * (summary["fast94_muon_test_acc"] - against["airbench_test_acc"]),
        "time_ratio": summary["fast94_muon_train_s"] / against["airbench_train_s"],
    }


def against_airbench(args) -> dict:
    """Figure 6: fast94 against airbench94 at each epoch count, then fast94_muon against airbench94."""
    folder = Path(args.tmp) / "airbench"
    write_airbench_data(args.data_root, folder)
    lengths = [one_length(args, folder, epochs) for epochs in args.airbench_epochs]
    return {
        "batch_size": args.airbench_batch_size,
        "widths": args.airbench_widths,
        "seeds": args.airbench_seeds,
        "lengths": lengths,
        "muon": muon_row(args, lengths),
    }
