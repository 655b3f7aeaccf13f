import pickle

import pytest
import torch
from omegaconf import OmegaConf

from lit_cifar.data.cifar10 import CIFAR10_MEAN, CIFAR10DataModule
from lit_cifar.run.errors import UserError
from lit_cifar.run.validate import check_values


def datamodule(root, **kwargs) -> CIFAR10DataModule:
    args = dict(
        root=str(root),
        download=False,
        verify_checksums=False,
        num_classes=10,
        in_channels=3,
        image_size=32,
        val_size=20,
        batch_size=8,
        num_workers=0,
    )
    return CIFAR10DataModule(**{**args, **kwargs})


def test_reads_the_pickle_layout_with_a_seeded_split(cifar_root):
    dm = datamodule(cifar_root)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (80, 20, 40)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape[1:] == (3, 32, 32)
    assert dm.class_names[0] == "airplane" and len(dm.class_names) == 10

    again = datamodule(cifar_root)
    again.setup("fit")
    assert torch.equal(again.val_set.images, dm.val_set.images)
    other = datamodule(cifar_root, split_seed=1)
    other.setup("fit")
    assert not torch.equal(other.val_set.images, dm.val_set.images)


def test_batches_arrive_normalized_with_cifar_statistics(cifar_root):
    dm = datamodule(cifar_root, rotation=0, translate=0, hflip=False)
    dm.setup("fit")
    images, labels = next(iter(dm.val_dataloader()))
    assert images.dtype == torch.uint8  # the loader carries uint8; normalization happens on the device
    normalized, same_labels = dm.on_after_batch_transfer((images, labels), 0)
    assert normalized.dtype == torch.float32 and same_labels is labels
    expected = (images[:, 0].float() / 255 - CIFAR10_MEAN[0]) / 0.2470
    torch.testing.assert_close(normalized[:, 0], expected)


def test_training_augmentation_changes_images_but_not_their_size(cifar_root):
    dm = datamodule(cifar_root)
    dm.setup("fit")
    image = dm.train_set.images[0]
    augmented = dm.train_set[0][0]
    assert augmented.shape == image.shape and augmented.dtype == torch.uint8
    assert any(not torch.equal(dm.train_set[0][0], image) for _ in range(5))


def test_the_real_slice_loads_when_told_it_is_a_custom_copy(cifar_slice):
    dm = datamodule(cifar_slice, val_size=500)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (4160, 500, 846)
    with pytest.raises(UserError, match="official CIFAR-10 checksum.*verify_checksums=false"):
        datamodule(cifar_slice, verify_checksums=True).setup("fit")


def test_truncated_batch_is_refused_naming_the_file(cifar_root):
    batch = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(UserError, match="data_batch_3"):
        datamodule(cifar_root).setup("fit")


def test_batch_with_wrong_shape_is_refused(cifar_root):
    batch = cifar_root / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(batch.read_bytes())
    entry["labels"] = entry["labels"][:-1]
    batch.write_bytes(pickle.dumps(entry))
    with pytest.raises(UserError, match="test_batch is not a CIFAR-10 batch"):
        datamodule(cifar_root).setup("fit")


def test_missing_data_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(UserError, match="not found.*data.download=true"):
        datamodule(tmp_path).prepare_data()


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True])
def test_a_batch_size_other_than_a_positive_integer_is_refused(batch_size):
    with pytest.raises(UserError, match=f"data.batch_size={batch_size} must be a positive integer"):
        check_values(OmegaConf.create({"data": {"batch_size": batch_size}}))


def test_a_fraction_holds_out_that_share_of_the_training_images(cifar_root):
    dm = datamodule(cifar_root, val_size=0.25)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (75, 25)


def test_num_classes_null_is_read_from_batches_meta(cifar_root):
    dm = datamodule(cifar_root, num_classes=None)
    assert dm.count_classes() == 10
    dm.setup("fit")
    assert dm.num_classes == 10
