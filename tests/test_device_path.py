"""The batched pipeline's data on the device: alternating flips, evaluation batches padded to one shape and
counted once, no validation split (`data.val_size=0`), and `module.compile=true` compiling once per stage."""

from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lit_cifar.data.batched import OrderedBatches
from lit_cifar.data.chars import CharsDataModule
from lit_cifar.data.cifar10 import CIFAR10DataModule
from lit_cifar.data.make_chars import generate
from lit_cifar.run.errors import UserError
from lit_cifar.training.module import LitClassifier

CIFAR = {"num_classes": 10, "in_channels": 3, "image_size": 32, "download": False, "verify_checksums": False}


def cifar(root, **kwargs) -> CIFAR10DataModule:
    return CIFAR10DataModule(root=str(root), **{**CIFAR, "val_size": 20, "batch_size": 16, "num_workers": 0, **kwargs})


def plain_sgd(module: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(module.parameters(), lr=0.1)


def trainer(**kwargs) -> pl.Trainer:
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    return pl.Trainer(accelerator="cpu", enable_model_summary=False, **{**quiet, **kwargs})


def test_alternating_flips_mirror_each_image_every_other_epoch(cifar_root):
    dm = cifar(cifar_root, pipeline="batched", alternate_flips=True, batch_size=80)
    dm.setup("fit")
    torch.manual_seed(0)
    loader = dm.train_dataloader()
    originals = {tuple(image.flatten()[:64].tolist()): image for image in dm.train_set.images}

    def orientations(epoch: int) -> dict[tuple, bool]:
        """Each image's first pixels → whether it came mirrored in `epoch`."""
        loader.sampler.set_epoch(epoch)
        seen = {}
        for images, _ in loader:
            for image in images:
                key = tuple(image.flatten()[:64].tolist())
                mirrored = key not in originals
                if mirrored:
                    key = tuple(image.flip(-1).flatten()[:64].tolist())
                seen[key] = mirrored
        return seen

    epochs = [orientations(epoch) for epoch in range(3)]
    assert epochs[0].keys() == originals.keys()
    assert 20 < sum(epochs[0].values()) < 60  # a random half starts mirrored
    assert all(epochs[1][key] != epochs[0][key] and epochs[2][key] == epochs[0][key] for key in originals)


def test_alternating_flips_leave_no_random_flip_to_the_step(cifar_root):
    dm = cifar(cifar_root, pipeline="batched", alternate_flips=True, translate=0, rotation=0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(dm.augment(images, step=0), images.float())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pipeline": "loader", "alternate_flips": True}, "data.pipeline=batched"),
        ({"pipeline": "loader", "shift_padding": "reflect"}, "data.pipeline=batched"),
        ({"pipeline": "batched", "alternate_flips": True, "hflip": False}, "data.alternate_flips=true"),
    ],
)
def test_options_the_pipeline_cannot_honour_are_refused_in_one_line(options, message):
    with pytest.raises(UserError, match=message) as error:
        CIFAR10DataModule(**CIFAR, **options)
    assert "\n" not in str(error.value)


def test_evaluation_batches_are_padded_to_one_shape_and_keep_every_label_once():
    images, labels = torch.arange(20).view(20, 1, 1, 1).to(torch.uint8), torch.arange(20)
    batches = list(OrderedBatches(images, labels, batch_size=8))
    assert len(batches) == len(OrderedBatches(images, labels, batch_size=8)) == 3
    assert [tuple(b.shape) for b, _ in batches] == [(8, 1, 1, 1)] * 3
    assert torch.equal(torch.cat([y for _, y in batches]), labels)
    assert torch.equal(batches[-1][0][:4].flatten(), images[16:].flatten())
    assert len(list(OrderedBatches(images, labels, batch_size=64))) == 1  # a small set: one batch of its size


def test_metrics_count_each_evaluation_image_once(cifar_root):
    """40 test images in batches of 16: the last batch is padded; accuracy and loss cover the 40 images."""
    dm = cifar(cifar_root, pipeline="batched")
    torch.manual_seed(0)
    module = LitClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), plain_sgd)
    seen = []
    counter = pl.Callback()
    counter.on_test_batch_start = lambda trainer, module, batch, *args: seen.append(len(batch[1]))
    result = trainer(callbacks=[counter]).test(module, datamodule=dm, verbose=False)[0]
    dm_images, dm_labels = dm.test_set.images, dm.test_set.labels
    with torch.no_grad():
        logits = module(dm.normalize(dm_images))
    assert seen == [16, 16, 8]
    assert result["test/acc"] == pytest.approx((logits.argmax(1) == dm_labels).float().mean().item())
    assert result["test/loss"] == pytest.approx(nn.functional.cross_entropy(logits, dm_labels).item(), rel=1e-5)


@pytest.mark.parametrize("pipeline", ["loader", "batched"])
def test_val_size_zero_trains_on_every_training_image_and_skips_validation(cifar_root, pipeline):
    dm = cifar(cifar_root, pipeline=pipeline, val_size=0)
    dm.setup("fit")
    assert (len(dm.train_set), dm.val_set, len(dm.test_set)) == (100, None, 40)
    assert dm.val_dataloader() == []
    module = LitClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), plain_sgd)
    validated = []
    module.validation_step = lambda *args: validated.append(1)
    fit = trainer(max_epochs=1)
    fit.fit(module, datamodule=dm)
    assert validated == [] and fit.global_step == 100 // 16


def test_val_size_zero_without_a_test_split_is_refused_in_one_line(tmp_path):
    generate(tmp_path / "chars", {"train": 3}, symbols="0Aa", font_dirs=[])
    dm = CharsDataModule(root=str(tmp_path / "chars"), in_channels=1, image_size=90, val_size=0, num_classes=3)
    with pytest.raises(UserError, match=r"data.val_size=0 leaves nothing to test.*data.val_size=0.1"):
        dm.setup("fit")


class CountingBackend:
    """A torch.compile backend that runs the graph as traced and counts the graphs it was given."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs) -> callable:
        self.graphs += 1
        return graph.forward


def test_compile_builds_one_graph_per_stage(cifar_root, monkeypatch):
    """fit (training, then validation of 20 images in batches of 16 with TTA) and test (40 images): a smaller
    last batch, the test phase's inference mode and the EMA's weight swaps must not compile again."""
    from lit_cifar.callbacks.ema import EMA

    backend = CountingBackend()
    monkeypatch.setattr(torch, "compile", partial(torch.compile, backend=backend))
    torch._dynamo.reset()
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(10))
    net(torch.zeros(1, 3, 32, 32))
    module = LitClassifier(net, plain_sgd, compile=True, tta=True)
    dm = cifar(cifar_root, pipeline="batched")
    run = trainer(max_epochs=2, num_sanity_val_steps=0, callbacks=[EMA(decay=0.9)])
    run.fit(module, datamodule=dm)
    after_fit = backend.graphs
    run.test(module, datamodule=dm, verbose=False)
    assert after_fit == 2  # one training graph, one evaluation graph
    assert backend.graphs == after_fit  # test reuses the evaluation graph


def test_a_resumed_batched_run_trains_what_the_uninterrupted_run_did(cifar_root, tmp_path):
    """Order, alternating flips and per-step shifts depend on (seed, epoch or step) alone: resuming from the
    first epoch's checkpoint ends with the weights of a run that was never stopped."""

    def run(max_epochs: int, ckpt_path=None) -> tuple[LitClassifier, pl.Trainer]:
        torch.manual_seed(5)
        module = LitClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), plain_sgd)
        dm = cifar(cifar_root, pipeline="batched", alternate_flips=True, shift_padding="reflect", translate=2)
        saved = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, filename="{epoch}")
        fit = trainer(max_epochs=max_epochs, callbacks=[saved], enable_checkpointing=True, num_sanity_val_steps=0)
        fit.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        return module

    whole = run(max_epochs=3)
    resumed = run(max_epochs=3, ckpt_path=tmp_path / "epoch=0.ckpt")
    assert torch.equal(resumed.net[1].weight, whole.net[1].weight)
