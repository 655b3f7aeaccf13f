"""`python -m benchmarks.bench [options]` (`make bench`): seven figures (eight on a GPU), printed as tables and written
as markdown + JSON to `<out>/bench_<timestamp>.{md,json}`:

1. input pipeline images/s (augmentation and normalization included, no model): the per-image DataLoader
   path at each num_workers × pin_memory, and the batched path;
2. training images/s of the project (Trainer + LitClassifier, a run's callbacks and TensorBoard logger) against
   bare Lightning (Trainer + a module with the same net, loss and optimizer and nothing else) and a plain PyTorch
   loop, over the same batches, in turn in one process;
3. time to a target validation accuracy, and accuracy at equal wall time, for the default recipe and
   experiment=fast94 on the real CIFAR-10 slice;
4. start-up of the command line: `--help` and a config error of every command (train, evaluate, predict, tune,
   report, rerun) against importing torch alone, alternated in one run; each should take at most 1.2 times that.
5. what checking the user's input costs: the start's checks (lit_cifar.run.validate and the net's input-size probe)
   against a one-epoch run on the slice, and the data checks of a full-size CIFAR-10 load (60,000 synthetic
   images in the official layout) against that load;
6. experiment=fast94 against airbench94's own code on the same data, epochs, batch size and widths, at several
   epoch counts, and experiment=fast94_muon against airbench94: test accuracy
   with test-time augmentation and training seconds over several seeds, and their ratios (benchmarks.airbench_peer;
   needs the `bench` extra: pip install -e '.[bench]');
7. on a GPU: trials per minute of one sweep of small one-epoch trials at 1, 2 and 4 jobs per GPU
   (hydra.launcher.jobs_per_gpu);
8. what a sweep job costs beyond its own fit and test, with the basic and the parallel launcher
   (benchmarks.sweep_overhead).
Sizes are options so that it runs in a few minutes on a CPU; the same command runs on a GPU."""

import argparse
import importlib.util
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.airbench_peer import against_airbench
from benchmarks.cli import bench_parser
from benchmarks.machine import describe, machine
from benchmarks.sweep_overhead import overhead_markdown, sweep_overhead
from lit_cifar.run.errors import UserError, exit_on_user_error, run_app
from lit_cifar.training.module import LitClassifier

CONF = Path(__file__).resolve().parents[1] / "conf"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = bench_parser("benchmarks.bench", __doc__)
    p.add_argument("--verify-checksums", action="store_true", help="off by default: the slice is a custom copy")
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--precision", default=None, help="default: bf16-mixed on a GPU, 32-true on the CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the nets (figures 2 and 3)")
    p.add_argument(
        "--sections", default=None, help="which figures to measure, e.g. 2,3; default: 1 to 8 (7 on a GPU only)"
    )
    p.add_argument("--out", default="bench", help="folder for the markdown and JSON results")
    g = p.add_argument_group("1: input pipeline")
    g.add_argument("--pipeline-batch-size", type=int, default=256)
    g.add_argument("--pipeline-epochs", type=int, default=2, help="timed passes over the train set, after one warm-up")
    g.add_argument("--workers", default="0,1,2", help="num_workers values of the DataLoader path")
    g = p.add_argument_group("2: project vs plain loop")
    g.add_argument(
        "--throughput-models",
        default="model=week11_cnn;model=two_layer_fc model.hidden=32",
        help="';'-separated model overrides, one row each; the tiny second net makes the step cheap, so its "
        "row shows the framework's own cost per step",
    )
    g.add_argument("--throughput-batch-size", type=int, default=256)
    g.add_argument("--throughput-batches", type=int, default=48, help="timed batches per repeat")
    g.add_argument("--repeats", type=int, default=7, help="alternating project/plain repeats (median taken)")
    g = p.add_argument_group("3: recipes on the slice")
    g.add_argument(
        "--default-overrides", default="trainer.max_epochs=8", help="overrides of the default recipe (space-separated)"
    )
    g.add_argument(
        "--fast-overrides",
        default="experiment=fast94 data.batch_size=256 model.widths=[32,64,128] trainer.max_epochs=8",
        help="overrides of the fast recipe (space-separated; narrower and smaller batches for a CPU)",
    )
    g.add_argument("--target-acc", type=float, default=0.5, help="validation accuracy to time")
    g = p.add_argument_group("4: command-line start-up")
    g.add_argument("--cli-repeats", type=int, default=3, help="alternating runs of each command (best taken)")
    g = p.add_argument_group("6: fast94 against airbench94")
    g.add_argument("--airbench-seeds", default="0,1,2", help="one run of each recipe per seed, in turn")
    g.add_argument("--airbench-epochs", default="8,10,14", help="the epoch counts, each with every seed")
    g.add_argument("--muon-epochs", type=int, default=8, help="experiment=fast94_muon's (airbench94_muon's: 8)")
    g.add_argument("--airbench-batch-size", type=int, default=None, help="default: 1024 on a GPU, 256 on a CPU")
    g.add_argument(
        "--airbench-widths",
        default=None,
        help="the three blocks' widths; default: airbench's 64,256,256 on a GPU, 32,64,128 on a CPU",
    )
    g = p.add_argument_group("7: trials per minute on a GPU")
    g.add_argument("--jobs-per-gpu", default="1,2,4", help="hydra.launcher.jobs_per_gpu values, one sweep each")
    g.add_argument("--trials", type=int, default=8, help="one-epoch trials of each sweep (seeds 0, 1, …)")
    g.add_argument("--trial-overrides", default="model=week11_cnn", help="the trials' overrides (space-separated)")
    g = p.add_argument_group("8: a sweep job's cost beyond its fit and test")
    g.add_argument("--overhead-jobs", type=int, default=12, help="one-epoch week11_cnn jobs of each sweep (seeds)")
    g.add_argument("--overhead-parallel", type=int, default=2, help="the parallel launcher's hydra.launcher.n_jobs")
    args = p.parse_args(argv)
    sections = args.sections or ("1,2,3,4,5,6,7,8" if torch.cuda.is_available() else "1,2,3,4,5,6,8")
    args.sections = set(whole_numbers("--sections", sections))
    args.jobs_per_gpu = whole_numbers("--jobs-per-gpu", args.jobs_per_gpu)
    args.workers = whole_numbers("--workers", args.workers)
    args.airbench_seeds = whole_numbers("--airbench-seeds", args.airbench_seeds)
    args.airbench_epochs = whole_numbers("--airbench-epochs", args.airbench_epochs)
    if args.airbench_widths is not None:
        text, args.airbench_widths = args.airbench_widths, whole_numbers("--airbench-widths", args.airbench_widths)
        if len(args.airbench_widths) != 3:
            raise UserError(f"--airbench-widths={text} names {len(args.airbench_widths)} widths, not 3, e.g. 32,64,128")
    if not args.sections <= {1, 2, 3, 4, 5, 6, 7, 8}:
        raise UserError(f"--sections={sorted(args.sections)} may only name 1 to 8, e.g. --sections 1,3")
    if 7 in args.sections and not torch.cuda.is_available():
        raise UserError("figure 7 shares a GPU between trials, and this machine has none; leave 7 out of --sections")
    if 6 in args.sections and importlib.util.find_spec("airbench") is None:
        raise UserError(
            "figure 6 runs airbench, which is not installed: pip install -e '.[bench]', or --sections 1,2,3,4,5"
        )
    return args


def whole_numbers(option: str, text: str) -> list[int]:
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        raise UserError(f"{option}={text} must list whole numbers, e.g. {option} 0,2") from None


def device_of(args: argparse.Namespace) -> torch.device:
    if args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--accelerator gpu needs CUDA, which this machine lacks; use --accelerator cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def config(args: argparse.Namespace, *overrides: str):
    """The project's composed config for the bench's data and device, plus `overrides`."""
    trainer = "gpu" if args.device.type == "cuda" else "cpu"
    common = [
        f"data.root={args.data_root}",
        f"data.verify_checksums={args.verify_checksums}",
        "data.download=false",
        f"data.val_size={args.val_size}",
        f"trainer={trainer}",
        f"trainer.precision={args.precision}",
        f"module.compile={args.compile}",
        f"trainer.default_root_dir={args.tmp}",
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*common, *overrides])


def pipeline_throughput(args: argparse.Namespace) -> list[dict]:
    """Figure 1: images/s of training batches on the device, augmented and normalized."""
    rows = []
    settings = [("loader", w, pin) for w in args.workers for pin in (False, True)] + [("batched", 0, False)]
    for pipeline, workers, pin in settings:
        cfg = config(
            args,
            f"data.pipeline={pipeline}",
            f"data.num_workers={workers}",
            f"data.pin_memory={pin}",
            f"data.batch_size={args.pipeline_batch_size}",
            "data.persistent_workers=true",
        )
        dm = instantiate(cfg.data)
        dm.setup("fit")
        if pipeline == "batched":  # where setup puts it under a CUDA trainer
            dm.train_set.images = dm.train_set.images.to(args.device)
        loader = dm.train_dataloader()
        images_seen, start = 0, None
        step = 0
        for epoch in range(args.pipeline_epochs + 1):
            if epoch == 1:  # the first pass starts the workers and warms caches
                sync(args.device)
                start = time.perf_counter()
            for images, _ in loader:
                images = images.to(args.device, non_blocking=pin)
                images = dm.normalize(dm.augment(images, step) if pipeline == "batched" else images)
                step += 1
                images_seen += len(images) if epoch else 0
        sync(args.device)
        rate = images_seen / (time.perf_counter() - start)
        rows.append({"pipeline": pipeline, "num_workers": workers, "pin_memory": pin, "images_per_s": rate})
        print(f"  {pipeline:8s} workers={workers} pin_memory={pin!s:5s} {rate:10,.0f} img/s", flush=True)
    return rows


class _Clock(pl.Callback):
    """Wall time of training batches after the first `skip` (compilation and warm-up)."""

    def __init__(self, skip: int, device: torch.device) -> None:
        self.skip, self.device, self.start, self.elapsed = skip, device, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.skip:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        sync(self.device)
        self.elapsed = time.perf_counter() - self.start


class _BareModule(pl.LightningModule):
    """Figure 2's middle column: the same net, loss and optimizer as LitClassifier in channels_last, and nothing
    else (no metrics, no logging), so that the figure tells Lightning's own cost from the project's."""

    def __init__(self, net: torch.nn.Module, optimizer, compile: bool) -> None:
        super().__init__()
        self.net, self.make_optimizer, self.criterion = net, optimizer, torch.nn.CrossEntropyLoss()
        self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return self.criterion(self.net(images.contiguous(memory_format=torch.channels_last)), labels)

    def configure_optimizers(self):
        return self.make_optimizer(self)


def framework_overhead(args: argparse.Namespace, model_overrides: str) -> dict:
    """Figure 2: the project (Trainer + LitClassifier with a run's per-batch callbacks and TensorBoard logger)
    against bare Lightning (Trainer + _BareModule, no callbacks, no logger) and a plain loop, same net, data and
    optimizer."""
    cfg = config(args, *model_overrides.split(), "optim=adam")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    warmup, n = 2, args.throughput_batch_size * args.throughput_batches  # n: timed images
    index = torch.arange(n + warmup * args.throughput_batch_size) % len(dm.train_set)
    data = TensorDataset(dm.normalize(dm.train_set.images[index]), dm.train_set.labels[index])
    loader = DataLoader(data, batch_size=args.throughput_batch_size)
    optimizer = instantiate(cfg.optim)
    autocast = args.precision.startswith("bf16") and args.device.type == "cuda"

    # A run's callbacks but those that write files, draw on a terminal or act on the first batch only (checkpoints,
    # HParams, progress, summary, images: these also read a datamodule, which this loader has not).
    run_callbacks = config(
        args, "callbacks.model_checkpoint=null", "callbacks.hparams=null", "callbacks.progress_bar=null",
        "callbacks.model_summary=null", "callbacks.images=null",
    ).callbacks  # fmt: skip

    def fit(module: pl.LightningModule, callbacks: list[pl.Callback], logger) -> float:
        clock = _Clock(warmup, args.device)
        trainer = pl.Trainer(
            accelerator=args.device.type, devices=1, precision=args.precision, max_epochs=1, logger=logger,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
            num_sanity_val_steps=0, callbacks=[*callbacks, clock], default_root_dir=args.tmp,
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=loader)
        return n / clock.elapsed

    def project() -> float:
        torch.manual_seed(0)
        module = LitClassifier(instantiate(cfg.model), optimizer, num_classes=dm.num_classes, compile=args.compile)
        callbacks = [instantiate(c) for c in run_callbacks.values() if c is not None]
        return fit(module, callbacks, TensorBoardLogger(args.tmp, name="bench"))

    def bare() -> float:
        torch.manual_seed(0)
        return fit(_BareModule(instantiate(cfg.model), optimizer, compile=args.compile), [], False)

    def plain() -> float:
        torch.manual_seed(0)
        net = instantiate(cfg.model).to(args.device, memory_format=torch.channels_last)  # as LitClassifier does
        if args.compile:
            net.compile()
        opt, criterion = optimizer(net), torch.nn.CrossEntropyLoss()
        net.train()
        for step, (x, y) in enumerate(loader):
            if step == warmup:
                sync(args.device)
                start = time.perf_counter()
            x, y = x.to(args.device, non_blocking=True), y.to(args.device, non_blocking=True)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(args.device.type, torch.bfloat16, enabled=autocast):
                loss = criterion(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(args.device)
        return n / (time.perf_counter() - start)

    runs = {"project": [], "bare": [], "plain": []}
    order = [("project", project), ("bare", bare), ("plain", plain)]
    for repeat in range(args.repeats):  # rotate the order so that drifting load hits all three alike
        for name, run in order[repeat % 3 :] + order[: repeat % 3]:
            runs[name].append(run())
            print(f"  {model_overrides}, repeat {repeat}: {name:7s} {runs[name][-1]:8,.0f} img/s", flush=True)
    batch = args.throughput_batch_size

    def per_step_ms(slower: str, faster: str) -> float:
        # Each repeat's runs ran back to back, so comparing within a repeat cancels load that drifts between repeats.
        pairs = zip(runs[slower], runs[faster], strict=True)
        return statistics.median(1000 * batch * (1 / p - 1 / q) for p, q in pairs)

    return {
        "model": model_overrides,
        "batch_size": batch,
        **{f"{name}_images_per_s": statistics.median(values) for name, values in runs.items()},
        "ratio": statistics.median(p / q for p, q in zip(runs["project"], runs["plain"], strict=True)),
        "overhead_ms_per_step": per_step_ms("project", "plain"),
        "project_over_bare_ms_per_step": per_step_ms("project", "bare"),
        "bare_over_plain_ms_per_step": per_step_ms("bare", "plain"),
    }


class _Curve(pl.Callback):
    """(seconds since training started, val/acc) after every validation."""

    def __init__(self) -> None:
        self.start, self.points = 0.0, []

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.points.append((time.perf_counter() - self.start, float(trainer.callback_metrics["val/acc"])))


def recipe(args: argparse.Namespace, name: str, overrides: str) -> dict:
    """Train one recipe on the slice; its validation curve over wall time and its final test accuracy."""
    cfg = config(args, "~callbacks", *overrides.split())  # no run-level callbacks; a recipe's own (EMA, …) stay
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, module, curve = instantiate(cfg.data), instantiate(cfg.module), _Curve()
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values()]
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*callbacks, curve],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    test_acc = float(trainer.test(module, datamodule=dm, verbose=False)[0]["test/acc"])
    print(
        f"  {name}: " + ", ".join(f"{t:.0f}s {acc:.3f}" for t, acc in curve.points) + f"; test {test_acc:.3f}",
        flush=True,
    )
    return {
        "name": name,
        "overrides": overrides,
        "model": cfg.model._target_.rsplit(".", 1)[-1],
        "curve": curve.points,
        "test_acc": test_acc,
    }


def compare_recipes(runs: list[dict], target: float) -> list[dict]:
    """Figure 3: seconds to `target` val accuracy, and the best val accuracy within the shortest run's time."""
    equal_time = min(run["curve"][-1][0] for run in runs)
    for run in runs:
        run["seconds_to_target"] = next((t for t, acc in run["curve"] if acc >= target), None)
        run["equal_time_s"] = equal_time
        run["val_acc_at_equal_time"] = max((acc for t, acc in run["curve"] if t <= equal_time * 1.001), default=0.0)
    return runs


# Figure 4: what a user waits for before anything happens: `--help` and a config error of every command, against the
# floor that a command which trains pays (importing torch); each should answer within 1.2 times that floor.
IMPORT_TORCH = "python -c 'import torch'"
CLI_LINES = {  # what follows `python -m lit_cifar.`, and what is wrong with it
    "train --help": "",
    "train optim.learning_rate=1e-3": "unknown key",
    "train model=nope": "unknown option",
    "train data.batch_size=0": "value out of range",
    "evaluate --help": "",
    "evaluate data.batchsize=64": "unknown key",
    "evaluate data.batch_size=0": "value out of range",
    "evaluate": "no checkpoint",
    "predict --help": "",
    "predict topk=1": "unknown key",
    "predict top_k=0": "value out of range",
    "predict": "no images",
    "tune --help": "",
    "tune tune.max_lrr=1": "unknown key",
    "tune tune.min_lr=2": "min_lr above max_lr",
    "report --help": "",
    "report nowhere": "no such folder",
    "rerun --help": "",
    "rerun nowhere": "no such folder",
}
CLI_COMMANDS = {IMPORT_TORCH: ["-c", "import torch"]} | {
    f"python -m lit_cifar.{line}{f' ({wrong})' if wrong else ''}": ["-m", *f"lit_cifar.{line}".split()]
    for line, wrong in CLI_LINES.items()
}
CLI_WITHIN = 1.2  # times IMPORT_TORCH


def cli_startup(args: argparse.Namespace) -> list[dict]:
    """Figure 4: the best wall time of each command in CLI_COMMANDS over `--cli-repeats` runs, each repeat running
    every command in turn (so that the machine's noise falls on all alike), and its ratio to importing torch."""
    times: dict[str, list[float]] = {name: [] for name in CLI_COMMANDS}
    for _ in range(args.cli_repeats):
        for name, command in CLI_COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, *command], cwd=args.tmp, capture_output=True)
            times[name].append(time.perf_counter() - start)
    floor = min(times[IMPORT_TORCH])
    return [{"command": name, "best_s": min(t), "ratio": min(t) / floor} for name, t in times.items()]


def input_checks(args: argparse.Namespace) -> dict:
    """Figure 5: the start's checks (median of 20) against a one-epoch run of the default recipe through the
    command line; the data checks of a full-size CIFAR-10 load (batch_contents against a bare reshape, summed
    over the files) against the whole load (median of 3)."""
    from lit_cifar.data import cifar10
    from lit_cifar.run.validate import check_start
    from lit_cifar.training.build import check_input_size

    # the folders and names a run's resolvers give it, which need a Hydra run: the types check reads them
    here = [f"callbacks.model_checkpoint.dirpath={args.tmp}/checkpoints", f"logger.tensorboard.save_dir={args.tmp}"]
    cfg = config(args, "trainer.max_epochs=1", *here, "logger.tensorboard.version=bench")
    net = instantiate(cfg.module).net
    checks = []
    for _ in range(20):
        begin = time.perf_counter()
        check_start(cfg, overrides=[])
        check_input_size(net, cfg.data.in_channels, cfg.data.image_size, cfg.data.num_classes)
        checks.append(time.perf_counter() - begin)
    data = [f"data.root={args.data_root}", f"data.verify_checksums={args.verify_checksums}", "data.download=false"]
    command = ["lit_cifar.train", *data, f"data.val_size={args.val_size}", "trainer.max_epochs=1"]
    begin = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", *command, f"hydra.run.dir={args.tmp}/one_epoch"], check=True, capture_output=True
    )
    one_epoch = time.perf_counter() - begin

    folder = Path(args.tmp) / "full" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    files = [[f"data_batch_{i}", ""] for i in range(1, 6)] + [["test_batch", ""]]
    rng = np.random.default_rng(0)
    for name, _ in files:
        batch = {
            "data": rng.integers(0, 256, (10000, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, 10000).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    loads = []
    for _ in range(3):
        begin = time.perf_counter()
        cifar10.read_batches(folder, files, False, 10)
        loads.append(time.perf_counter() - begin)
    checked = bare = 0.0
    for name, _ in files:
        entry = cifar10.unpickle(folder / name)
        begin = time.perf_counter()
        cifar10.batch_contents(entry, 10)
        middle = time.perf_counter()
        np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(entry["labels"])
        checked, bare = checked + middle - begin, bare + time.perf_counter() - middle
    return {
        "start_checks_ms": 1000 * statistics.median(checks),
        "one_epoch_s": one_epoch,
        "data_checks_ms": 1000 * max(0.0, checked - bare),
        "load_ms": 1000 * statistics.median(loads),
    }


def trials_per_minute(args: argparse.Namespace) -> list[dict]:
    """Figure 7: the same sweep of `--trials` one-epoch trials on the bench's data through hydra/launcher=parallel at
    each `--jobs-per-gpu`, each timed from its command to its end (start-up, every trial and the table)."""
    rows = []
    for per_gpu in args.jobs_per_gpu:
        command = [
            sys.executable, "-m", "lit_cifar.train", "-m", *args.trial_overrides.split(),
            f"seed={','.join(map(str, range(args.trials)))}", "trainer.max_epochs=1", "trainer=gpu",
            f"trainer.precision={args.precision}", f"data.root={Path(args.data_root).resolve()}", "data.download=false",
            f"data.verify_checksums={args.verify_checksums}", f"data.val_size={args.val_size}",
            "hydra/launcher=parallel", f"hydra.launcher.jobs_per_gpu={per_gpu}",
            f"hydra.sweep.dir={Path(args.tmp) / f'jobs_per_gpu_{per_gpu}'}",
        ]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise UserError(f"the sweep failed: {' '.join(command)}\n{proc.stderr[-2000:]}")
        rows.append({"jobs_per_gpu": per_gpu, "trials": args.trials, "seconds": seconds})
        rows[-1]["trials_per_min"] = 60 * args.trials / seconds
        print(f"  jobs_per_gpu={per_gpu}: {args.trials} trials in {seconds:.1f}s", flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"# lit_cifar bench {result['timestamp']}",
        "",
        f"{describe(result['machine'])}; device {result['device']}, precision {result['precision']}, "
        f"compile {result['compile']}",
        "",
    ]
    if "pipeline" in result:
        lines += [
            "## 1. Input pipeline (train batches, augmented + normalized)",
            "",
            "| pipeline | num_workers | pin_memory | images/s |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['pipeline']} | {r['num_workers']} | {r['pin_memory']} | {r['images_per_s']:,.0f} |"
            for r in result["pipeline"]
        ]
        if result["device"] == "cpu":
            lines.append("\npin_memory takes effect only with CUDA: on a CPU its rows repeat the measurement.")
        lines.append("")
    if "overhead" in result:
        lines += [
            "## 2. Project vs bare Lightning vs a plain PyTorch loop (medians over repeats)",
            "",
            "| model | batch | project images/s | bare Lightning images/s | plain images/s | project / plain | "
            "ms/step: project over bare | bare over plain |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{o['model']}` | {o['batch_size']} | {o['project_images_per_s']:,.0f} | "
            f"{o['bare_images_per_s']:,.0f} | {o['plain_images_per_s']:,.0f} | {o['ratio']:.3f} | "
            f"{o['project_over_bare_ms_per_step']:.2f} | {o['bare_over_plain_ms_per_step']:.2f} |"
            for o in result["overhead"]
        ]
        lines.append("")
    if "recipes" in result:
        lines += [
            f"## 3. Recipes on the slice (target val/acc {result['target_acc']})",
            "",
            "| recipe | model | s to target | val/acc at equal time | at (s) | test/acc | overrides |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result["recipes"]:
            to_target = "not reached" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.0f}"
            lines.append(
                f"| {r['name']} | {r['model']} | {to_target} | {r['val_acc_at_equal_time']:.3f} | "
                f"{r['equal_time_s']:.0f} | {r['test_acc']:.3f} | `{r['overrides']}` |"
            )
        lines.append("")
    if "cli" in result:
        lines += [
            f"## 4. Command-line start-up (best of alternating runs; each within {CLI_WITHIN}× importing torch?)",
            "",
            "| command | s | ratio to importing torch | within |",
            "|---|---|---|---|",
        ]
        within = {True: "yes", False: "NO"}
        lines += [
            f"| `{c['command']}` | {c['best_s']:.2f} | {c['ratio']:.2f} | {within[c['ratio'] <= CLI_WITHIN]} |"
            for c in result["cli"]
        ]
        lines.append("")
    if "checks" in result:
        c = result["checks"]
        lines += [
            "## 5. Checking the input",
            "",
            "| check | ms | against | s | share |",
            "|---|---|---|---|---|",
            f"| start (config values, net input size) | {c['start_checks_ms']:.1f} | a one-epoch run on the slice | "
            f"{c['one_epoch_s']:.1f} | {c['start_checks_ms'] / 10 / c['one_epoch_s']:.3f}% |",
            f"| data (dtype, shape, labels) | {c['data_checks_ms']:.1f} | loading full-size CIFAR-10 | "
            f"{c['load_ms'] / 1000:.2f} | {100 * c['data_checks_ms'] / c['load_ms']:.1f}% |",
            "",
        ]
    if "airbench" in result:
        a, m = result["airbench"], result["airbench"]["muon"]
        lines += [
            f"## 6. experiment=fast94 against airbench94 (seeds {a['seeds']}, batch {a['batch_size']}, widths "
            f"{a['widths']}; training loop only, test accuracy with TTA; mean ± std over the seeds)",
            "",
            "| epochs | airbench94 test/acc | fast94 test/acc | fast94 − airbench94 | airbench94 s | fast94 s | "
            "fast94 / airbench94 time |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['epochs']} | {r['airbench_test_acc']:.4f} ± {r['airbench_test_acc_std']:.4f} | "
            f"{r['fast94_test_acc']:.4f} ± {r['fast94_test_acc_std']:.4f} | {r['acc_diff_points']:+.2f} points | "
            f"{r['airbench_train_s']:.2f} ± {r['airbench_train_s_std']:.2f} | "
            f"{r['fast94_train_s']:.2f} ± {r['fast94_train_s_std']:.2f} | {r['time_ratio']:.2f}× |"
            for r in a["lengths"]
        ]
        lines += [
            "",
            f"experiment=fast94_muon, {m['epochs']} epochs: {m['fast94_muon_test_acc']:.4f} ± "
            f"{m['fast94_muon_test_acc_std']:.4f} in {m['fast94_muon_train_s']:.2f} ± "
            f"{m['fast94_muon_train_s_std']:.2f} s; "
            f"against airbench94 at {m['against_epochs']} epochs: {m['acc_diff_points']:+.2f} points, "
            f"{m['time_ratio']:.2f}× its time",
            "",
            "| epochs | seed | airbench test/acc | s | fast94 test/acc | s |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {length['epochs']} | {r['seed']} | {r['airbench']['test_acc']:.4f} | {r['airbench']['train_s']:.2f} | "
            f"{r['fast94']['test_acc']:.4f} | {r['fast94']['train_s']:.2f} |"
            for length in a["lengths"]
            for r in length["runs"]
        ]
        lines.append("")
    if "trials" in result:
        first = result["trials"][0]
        lines += [
            f"## 7. Trials per minute on one GPU ({first['trials']} one-epoch trials of `{result['trial_overrides']}`, "
            "hydra/launcher=parallel, from the command to the sweep's table)",
            "",
            "| jobs_per_gpu | s | trials/min | against jobs_per_gpu=1 |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['jobs_per_gpu']} | {r['seconds']:.1f} | {r['trials_per_min']:.2f} | "
            f"{r['trials_per_min'] / first['trials_per_min']:.2f}× |"
            for r in result["trials"]
        ]
        lines.append("")
    if "sweep_overhead" in result:
        lines += [*overhead_markdown(result["sweep_overhead"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    with exit_on_user_error():
        args = parse_args(argv)
        args.device = device_of(args)
        on_gpu = args.device.type == "cuda"
        args.precision = args.precision or ("bf16-mixed" if on_gpu else "32-true")
        args.airbench_batch_size = args.airbench_batch_size or (1024 if on_gpu else 256)
        args.airbench_widths = args.airbench_widths or ([64, 256, 256] if on_gpu else [32, 64, 128])
        if not (Path(args.data_root) / "cifar-10-batches-py").is_dir():
            raise UserError(f"--data-root={args.data_root} holds no cifar-10-batches-py/; point it at CIFAR-10")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        result = {
            "timestamp": stamp,
            "device": torch.cuda.get_device_name() if args.device.type == "cuda" else "cpu",
            "precision": args.precision,
            "compile": args.compile,
            "machine": machine(),
        }
        print(f"device {result['device']}, precision {args.precision}, compile {args.compile}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            args.tmp = tmp
            if 1 in args.sections:
                print("1. input pipeline", flush=True)
                result["pipeline"] = pipeline_throughput(args)
            if 2 in args.sections:
                print("2. project vs plain loop", flush=True)
                result["overhead"] = [framework_overhead(args, m) for m in args.throughput_models.split(";")]
            if 3 in args.sections:
                print("3. recipes on the slice", flush=True)
                runs = [recipe(args, "default", args.default_overrides), recipe(args, "fast", args.fast_overrides)]
                result["recipes"], result["target_acc"] = compare_recipes(runs, args.target_acc), args.target_acc
            if 4 in args.sections:
                print("4. command-line start-up", flush=True)
                result["cli"] = cli_startup(args)
            if 5 in args.sections:
                print("5. checking the input", flush=True)
                result["checks"] = input_checks(args)
            if 6 in args.sections:
                print("6. fast94 against airbench94", flush=True)
                result["airbench"] = against_airbench(args)
            if 7 in args.sections:
                print("7. trials per minute on a GPU", flush=True)
                result["trials"], result["trial_overrides"] = trials_per_minute(args), args.trial_overrides
            if 8 in args.sections:
                print("8. a sweep job's cost beyond its fit and test", flush=True)
                result["sweep_overhead"] = sweep_overhead(args)
        text = markdown(result)
        for suffix, content in ((".md", text), (".json", json.dumps(result, indent=2))):
            path = out / f"bench_{stamp}{suffix}"
            if path.exists():
                raise UserError(f"{path} exists already; wait a second and run again")
            path.write_text(content)
        print("\n" + text + f"\nwritten to {out}/bench_{stamp}.md and .json")


if __name__ == "__main__":
    run_app(main)
