import argparse
import json

import lightning.pytorch as pl
import pytest
import torch
from conftest import run_cli, tiny_cifar_overrides, write_cifar
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks import bench
from benchmarks.machine import machine
from lit_cifar.callbacks.ema import EMA
from lit_cifar.callbacks.finite_loss import FiniteLossCheck
from lit_cifar.data.cifar10 import CIFAR10DataModule
from lit_cifar.models.fast_cnn import FastCNN
from lit_cifar.training.module import LitClassifier
from lit_cifar.training.schedules import one_cycle, warmup_linear


def test_fast_cnn_gives_logits_and_whitens_patches():
    net = FastCNN(3, 10, 32, widths=(8, 16, 16))
    assert net(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert not net.whiten.weight.requires_grad
    # correlated channels: whitening must decorrelate them and scale them to unit variance
    base = torch.randn(64, 1, 32, 32)
    images = torch.cat([base, base + 0.5 * torch.randn_like(base), torch.randn_like(base)], 1)
    net.whiten_(images)
    with torch.no_grad():
        responses = nn.functional.conv2d(images, net.whiten.weight[:12]).permute(1, 0, 2, 3).flatten(1)
    covariance = responses @ responses.T / responses.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])


def lr_per_step(scheduler, steps: int) -> list[float]:
    optimizer, lrs = scheduler.optimizer, []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_warmup_linear_rises_then_decays_to_its_final_factor_after_the_last_step():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    lrs = lr_per_step(warmup_linear(optimizer, total_steps=10, warmup_fraction=0.2, final_factor=0.1), 10)
    assert lrs[:3] == pytest.approx([0.0, 1.0, 2.0])
    assert lrs[-1] == pytest.approx(2.0 * (1 - 0.9 * 7 / 8))  # step 9 of 10; 0.1 × lr would be step 10's
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))


def test_one_cycle_peaks_at_each_groups_own_lr_also_when_replanned():
    # A norm group at 64x the lr, or lr in per-1024 units, must keep its peak: one max_lr for all would undo both.
    optimizer = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": lr} for lr in (0.5, 32.0)])

    def peaks(scheduler) -> list[float]:
        seen = []
        for _ in range(scheduler.total_steps):
            seen.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
        return [max(column) for column in zip(*seen, strict=True)]

    assert peaks(one_cycle(optimizer, total_steps=20)) == pytest.approx([0.5, 32.0])
    for group in optimizer.param_groups:  # what LitClassifier.on_train_start does before replanning a longer run
        group["lr"] = group["initial_lr"]
    assert peaks(one_cycle(optimizer, total_steps=40)) == pytest.approx([0.5, 32.0])


def test_warmup_linear_without_warmup_starts_at_the_full_lr():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    warmup_linear(optimizer, total_steps=5, warmup_fraction=0.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.0)


def plain_sgd(module: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(module.parameters(), lr=0.1)


def test_ema_weights_are_the_ones_tested_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(64, 3, 4, 4), torch.randint(0, 10, (64,))), batch_size=16)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 10))
    module = LitClassifier(net, plain_sgd)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EMA(decay=0.5), checkpoint],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, data, data)
    saved = torch.load(checkpoint.best_model_path, weights_only=False)
    averaged, raw = saved["state_dict"]["net.1.weight"], saved["current_model_state"]["net.1.weight"]
    assert not torch.allclose(averaged, raw)
    trainer.test(module, data, ckpt_path=checkpoint.best_model_path, verbose=False)
    assert torch.equal(module.net[1].weight, averaged)


class HostReadDetector(pl.Callback):
    """Fails on a host read of a tensor (bool(), .item(), torch.unique, indexing with a Python list, …) while
    the training batches run, loader included: on a GPU each one waits for the device. It is off during
    validation and at the epoch's end, where reading the metrics on the host is the point."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch, self.steps = monkeypatch, 0

    def _on(self) -> None:
        def host_read(*args, **kwargs):
            raise AssertionError("a training step read a tensor on the host")

        def indexed(tensor, index):
            if isinstance(index, list):
                raise AssertionError("a training step indexed a tensor with a Python list (a host→device copy)")
            return getitem(tensor, index)

        getitem = torch.Tensor.__getitem__
        for name in ("__bool__", "__int__", "__float__", "item", "tolist"):
            self.monkeypatch.setattr(torch.Tensor, name, host_read)
        self.monkeypatch.setattr(torch, "unique", host_read)
        self.monkeypatch.setattr(torch.Tensor, "__getitem__", indexed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._on()

    def on_train_batch_end(self, *args) -> None:
        self.steps += 1

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.monkeypatch.undo()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # back to the training steps
            self._on()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.monkeypatch.undo()


def test_training_reads_no_tensor_on_the_host(monkeypatch, tmp_path):
    root = write_cifar(tmp_path / "data")
    data = CIFAR10DataModule(
        root=str(root), download=False, verify_checksums=False, val_size=20, batch_size=16, pipeline="batched",
        num_classes=10, in_channels=3, image_size=32,
    )  # fmt: skip
    module = LitClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), plain_sgd)
    detector = HostReadDetector(monkeypatch)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        log_every_n_steps=1000,  # Lightning reads the logged values on the host when it writes a log line
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[detector, EMA(decay=0.9), FiniteLossCheck()],
    )
    trainer.fit(module, datamodule=data)
    assert detector.steps == 2 * (80 // 16)


@pytest.mark.slow
def test_fast94_trains_on_the_tiny_fixture(cifar_root, tmp_path):
    proc = run_cli(
        "lit_cifar.train",
        "experiment=fast94",
        *tiny_cifar_overrides(cifar_root),
        "trainer.max_epochs=2",
        "model.widths=[8,16,16]",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["test/acc"] <= 1.0


SIDES = ("project", "bare", "plain")


def test_figure_4_times_command_lines_against_importing_torch(tmp_path, monkeypatch):
    """Figure 4 on two of its command lines (all of them take minutes: each is a process of its own)."""
    chosen = {name: command for name, command in bench.CLI_COMMANDS.items() if name == bench.IMPORT_TORCH or
              name.endswith("report --help")}  # fmt: skip
    monkeypatch.setattr(bench, "CLI_COMMANDS", chosen)
    rows = bench.cli_startup(argparse.Namespace(cli_repeats=2, tmp=tmp_path))
    assert [row["command"] for row in rows] == list(chosen) and len(rows) == 2
    assert rows[0]["ratio"] == 1.0 and rows[1]["best_s"] > 0
    head = {"timestamp": "now", "machine": machine(), "device": "cpu", "precision": "32", "compile": False}
    page = bench.markdown(head | {"cli": rows})
    assert f"| `python -m lit_cifar.report --help` | {rows[1]['best_s']:.2f} | {rows[1]['ratio']:.2f} |" in page


@pytest.mark.slow
def test_bench_runs_end_to_end_on_the_tiny_fixture(cifar_root, tmp_path):
    out = tmp_path / "bench"
    proc = run_cli(
        "benchmarks.bench",
        "--data-root",
        str(cifar_root),
        "--sections",
        "1,2,3,5,6,8",  # 4 starts every command line of the project in a process of its own: its own test below
        "--val-size",
        "20",
        "--out",
        str(out),
        "--workers",
        "0",
        "--pipeline-batch-size",
        "16",
        "--pipeline-epochs",
        "1",
        "--throughput-batch-size",
        "8",
        "--throughput-batches",
        "2",
        "--repeats",
        "1",
        "--default-overrides",
        "trainer.max_epochs=1 data.batch_size=16 data.num_workers=0",
        "--fast-overrides",
        "experiment=fast94 trainer.max_epochs=1 data.batch_size=16 model.widths=[8,8,8]",
        "--target-acc",
        "0.0",
        "--airbench-seeds",
        "0,1",
        "--airbench-epochs",
        "1,2",
        "--muon-epochs",
        "1",
        "--airbench-batch-size",
        "16",
        "--airbench-widths",
        "8,8,8",
        "--overhead-jobs",
        "2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "device cpu, precision 32-true, compile False" in proc.stdout
    (result,) = [json.loads(p.read_text()) for p in out.glob("bench_*.json")]
    assert [(r["pipeline"], r["num_workers"]) for r in result["pipeline"]] == [("loader", 0)] * 2 + [("batched", 0)]
    assert all(r["images_per_s"] > 0 for r in result["pipeline"])
    assert [o["model"] for o in result["overhead"]] == ["model=week11_cnn", "model=two_layer_fc model.hidden=32"]
    assert all(o["ratio"] > 0 and o[f"{side}_images_per_s"] > 0 for o in result["overhead"] for side in SIDES)
    assert "| project images/s | bare Lightning images/s | plain images/s |" in proc.stdout
    assert [r["name"] for r in result["recipes"]] == ["default", "fast"]
    assert all(r["seconds_to_target"] is not None for r in result["recipes"])
    checks = result["checks"]
    assert checks["start_checks_ms"] > 0 and checks["one_epoch_s"] > 0 and checks["load_ms"] > checks["data_checks_ms"]
    assert "## 5. Checking the input" in proc.stdout
    overhead = result["sweep_overhead"]
    assert [(r["launcher"], r["jobs"], r["at_once"]) for r in overhead] == [("basic", 2, 1), ("parallel", 2, 2)]
    assert all(r["wall_s"] * r["at_once"] > r["fit_test_s"] > 0 for r in overhead)
    assert all(0 < r["first_job_s"] < r["wall_s"] for r in overhead)
    assert "## 8. What a sweep job costs beyond its own fit and test" in proc.stdout
    airbench = result["airbench"]
    assert [length["epochs"] for length in airbench["lengths"]] == [1, 2]
    for length in airbench["lengths"]:
        assert [run["seed"] for run in length["runs"]] == [0, 1]
        for run in length["runs"]:  # each side trained (a clock > 0) and tested with its TTA
            assert all(run[side]["train_s"] > 0 and 0 <= run[side]["test_acc"] <= 1 for side in ("airbench", "fast94"))
        assert length["time_ratio"] == pytest.approx(length["fast94_train_s"] / length["airbench_train_s"])
    muon = airbench["muon"]
    assert muon["epochs"] == 1 and muon["against_epochs"] == 2 and [run["seed"] for run in muon["runs"]] == [0, 1]
    assert muon["time_ratio"] == pytest.approx(muon["fast94_muon_train_s"] / airbench["lengths"][1]["airbench_train_s"])
    assert "## 6. experiment=fast94 against airbench94 (seeds [0, 1], batch 16" in proc.stdout
    assert "experiment=fast94_muon, 1 epochs:" in proc.stdout
    assert len(list(out.glob("bench_*.md"))) == 1


def test_bench_rejects_a_missing_data_root(tmp_path):
    proc = run_cli("benchmarks.bench", "--data-root", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "error: --data-root" in proc.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--workers", "x"),
        ("--sections", "2,a"),
        ("--sections", "9"),
        ("--airbench-widths", "8,8"),
        ("--airbench-seeds", "a"),
        ("--jobs-per-gpu", "1,two"),
    ],
)
def test_bench_rejects_bad_options_in_one_line(option, value):
    proc = run_cli("benchmarks.bench", option, value)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {option}=")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="figure 7 runs where there is a GPU")
def test_bench_figure_7_without_a_gpu_is_one_line():
    proc = run_cli("benchmarks.bench", "--sections", "7")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: figure 7 shares a GPU between trials, and this machine has none; leave 7 out of --sections"
    )
