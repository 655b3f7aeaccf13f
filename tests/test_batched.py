import math
from types import SimpleNamespace

import pytest
import torch
from conftest import write_cifar
from lightning.pytorch.plugins.precision import Precision

from lit_cifar.data.base import augmentation
from lit_cifar.data.batched import augment_batch
from lit_cifar.data.cifar10 import CIFAR10DataModule
from lit_cifar.training.tta import tta_logits

CIFAR = {"num_classes": 10, "in_channels": 3, "image_size": 32}


def smooth_image(seed: int = 0) -> torch.Tensor:
    """A 3×32×32 uint8 image with large-scale structure, so shifts and flips change its mean image."""
    low = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return (torch.nn.functional.interpolate(low, size=32, mode="bilinear") * 255).round().to(torch.uint8)[0]


def batched_draws(image: torch.Tensor, n: int, **aug) -> torch.Tensor:
    return augment_batch(image.expand(n, -1, -1, -1), generator=torch.Generator().manual_seed(1), **aug)


def per_image_draws(image: torch.Tensor, n: int, rotation: float, translate: int, hflip: bool) -> torch.Tensor:
    torch.manual_seed(2)
    transform = augmentation(32, rotation, translate, hflip)
    return torch.stack([transform(image) for _ in range(n)]).float()


def test_output_is_float_pixels_of_the_same_shape():
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    out = augment_batch(images, rotation=10, translate=4, hflip=True)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 255
    assert torch.equal(augment_batch(images, rotation=0, translate=0, hflip=False), images.float())


def test_translation_is_a_whole_pixel_shift_with_zero_fill_and_never_a_flip():
    image = torch.randint(1, 256, (3, 32, 32), dtype=torch.uint8)
    out = batched_draws(image, 50, rotation=0, translate=2, hflip=False)
    padded = torch.nn.functional.pad(image.float(), (2, 2, 2, 2))
    crops = {(dy, dx): padded[:, dy : dy + 32, dx : dx + 32] for dy in range(5) for dx in range(5)}
    found = [next((s for s, crop in crops.items() if torch.allclose(o, crop, atol=1e-3)), None) for o in out]
    assert None not in found  # every draw is one of the 25 crops, none mirrored
    assert len(set(found)) > 10  # and the shifts vary per image


def test_flip_happens_to_about_half_the_images():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = batched_draws(image, 400, rotation=0, translate=0, hflip=True)
    flipped = torch.tensor([torch.allclose(o, image.flip(-1).float(), atol=1e-3) for o in out])
    same = torch.tensor([torch.allclose(o, image.float(), atol=1e-3) for o in out])
    assert bool((flipped | same).all())
    assert 160 < int(flipped.sum()) < 240


def test_rotation_stays_within_bounds():
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    image[:, 15:17, 26:28] = 255  # a dot right of the centre, at angle 0
    out = batched_draws(image, 300, rotation=10, translate=0, hflip=False).mean(1)
    ys, xs = torch.meshgrid(torch.arange(32.0) - 15.5, torch.arange(32.0) - 15.5, indexing="ij")
    mass = out.sum((1, 2))
    angles = torch.rad2deg(torch.atan2((out * ys).sum((1, 2)) / mass, (out * xs).sum((1, 2)) / mass))
    assert angles.abs().max() <= 10.5
    assert angles.max() > 7 and angles.min() < -7  # the whole range is used


@pytest.mark.parametrize(("rotation", "translate", "hflip"), [(10, 4, True), (0, 2, False)])
def test_same_distribution_as_the_per_image_path(rotation, translate, hflip):
    """The mean of many draws of one image differs between the two paths no more than between two
    seeds of the batched path, and far less than from a different augmentation."""
    image, n = smooth_image(), 600
    aug = {"rotation": rotation, "translate": translate, "hflip": hflip}
    batched = batched_draws(image, n, **aug).mean(0)
    reseeded = augment_batch(image.expand(n, -1, -1, -1), generator=torch.Generator().manual_seed(7), **aug).mean(0)
    per_image = per_image_draws(image, n, **aug).mean(0)
    other = per_image_draws(image, n, rotation, translate + 2, not hflip).mean(0)
    noise, gap = (batched - reseeded).abs().mean(), (batched - per_image).abs().mean()
    assert gap < 1.5 * noise
    assert (batched - other).abs().mean() > 3 * gap


def test_shifts_can_fill_the_border_with_the_reflected_image():
    image = torch.randint(1, 256, (3, 32, 32), dtype=torch.uint8)
    out = batched_draws(image, 50, rotation=0, translate=2, hflip=False, padding="reflect")
    padded = torch.nn.functional.pad(image[None].float(), (2, 2, 2, 2), mode="reflect")[0]
    crops = {(dy, dx): padded[:, dy : dy + 32, dx : dx + 32] for dy in range(5) for dx in range(5)}
    found = [next((s for s, crop in crops.items() if torch.equal(o, crop)), None) for o in out]
    assert None not in found and len(set(found)) > 10
    assert (out > 0).all()  # no black border


def recording_net(seen: list) -> callable:
    """A stand-in net whose logit for each image is a distinct number per view it was shown."""

    def net(view: torch.Tensor) -> torch.Tensor:
        seen.append(view)
        return torch.full((len(view), 1), float(len(seen)))

    return net


def test_tta_weighs_the_image_half_and_each_shift_a_quarter_averaged_with_their_mirrors():
    images, seen = torch.randn(2, 3, 8, 8), []
    logits = tta_logits(recording_net(seen), images, flip=True)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., 2:, 2:], padded[..., :8, :8]
    expected = [images, images.flip(-1), up_left, up_left.flip(-1), down_right, down_right.flip(-1)]
    assert len(seen) == 6 and all(torch.equal(a, b) for a, b in zip(seen, expected, strict=True))
    # views 1..6 answered 1..6: weights 1/4, 1/4 and 1/8 for each of the four shifted views
    assert torch.allclose(logits, torch.full((2, 1), (1 + 2) / 4 + (3 + 4 + 5 + 6) / 8))
    assert all(view.is_contiguous() for view in seen)  # one stride pattern for a compiled net


def test_tta_never_mirrors_when_flips_change_the_label():
    images, seen = torch.randn(2, 1, 8, 8), []
    logits = tta_logits(recording_net(seen), images, flip=False)
    assert len(seen) == 3 and not any(torch.equal(v, images.flip(-1)) for v in seen)
    assert torch.allclose(logits, torch.full((2, 1), 1 / 2 + (2 + 3) / 4))


@pytest.fixture
def batched_module(tmp_path):
    root = write_cifar(tmp_path / "data")
    dm = CIFAR10DataModule(
        root=str(root), download=False, verify_checksums=False, val_size=20, batch_size=16, pipeline="batched", **CIFAR
    )
    dm.setup("fit")
    return dm


def test_batched_loader_yields_whole_uint8_batches_in_a_seeded_order(batched_module):
    dm = batched_module
    torch.manual_seed(0)
    loader = dm.train_dataloader()

    def epoch(loader, number: int) -> torch.Tensor:
        loader.sampler.set_epoch(number)  # as Lightning does at each epoch's start
        return torch.cat([labels for _, labels in loader])

    first, second = epoch(loader, 0), epoch(loader, 1)
    images, labels = next(iter(loader))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (16,)
    assert len(loader) == len(dm.train_set) // 16 == len(first) // 16
    assert not torch.equal(first, second)  # a new permutation per epoch
    torch.manual_seed(0)  # a resumed run: a new loader, the same seed, epoch 1 drawn first
    again = dm.train_dataloader()
    assert torch.equal(epoch(again, 1), second) and torch.equal(epoch(again, 0), first)
    torch.manual_seed(1)
    assert not torch.equal(epoch(dm.train_dataloader(), 0), first)


def test_batched_augmentation_runs_in_training_only_and_is_normalized(batched_module):
    dm = batched_module
    images = dm.train_set.images[:64]
    full = Precision()  # 32-true: the images stay float32
    dm.trainer = SimpleNamespace(training=False, precision_plugin=full)
    evaluated, _ = dm.on_after_batch_transfer((images, torch.zeros(64)), 0)
    assert torch.equal(evaluated, dm.normalize(images))
    dm.trainer = SimpleNamespace(training=True, global_step=0, precision_plugin=full)
    trained, _ = dm.on_after_batch_transfer((images, torch.zeros(64)), 0)
    assert trained.dtype == torch.float32 and not torch.allclose(trained, evaluated)
    black = -torch.tensor(dm.mean) / torch.tensor(dm.std)  # zero fill, normalized like a black pixel
    assert math.isclose(trained.amin((0, 2, 3))[0], black[0], rel_tol=1e-5)


def test_batched_draws_depend_on_the_seed_and_step_only(batched_module):
    # So a run resumed at step 5 augments step 5 as the uninterrupted run did; no generator state is saved.
    images = batched_module.train_set.images[:32]
    torch.manual_seed(3)
    first = batched_module.augment(images, step=5)
    batched_module.augment(images, step=6)
    torch.manual_seed(3)
    assert torch.equal(batched_module.augment(images, step=5), first)
    assert not torch.equal(batched_module.augment(images, step=6), first)
    torch.manual_seed(4)  # another seed, the same step: other draws (a CPU generator keeps only 32 bits of its seed)
    assert not torch.equal(batched_module.augment(images, step=5), first)
