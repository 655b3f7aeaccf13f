import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, assert_every_model_passes_a_fast_dev_run, run_cli
from omegaconf import OmegaConf
from PIL import Image
from torchvision.datasets import EMNIST

from lit_cifar import predict
from lit_cifar.data import chars, make_chars
from lit_cifar.data.chars import STATS_FILE, CharsDataModule, class_of
from lit_cifar.data.emnist import EMNISTDataModule
from lit_cifar.data.make_chars import ALPHABET, DIGITS, FONT_DIRS, LOWER, UPPER, generate, load_fonts
from lit_cifar.run.errors import UserError


def datamodule(root: Path, **kwargs) -> CharsDataModule:
    args = dict(root=str(root), num_classes=3, in_channels=1, image_size=90, val_size=3, batch_size=8, num_workers=0)
    return CharsDataModule(**{**args, **kwargs})


def chars_overrides(root: Path, image_size: int = 32) -> list[str]:
    """Overrides for a quick CPU run on the generated 52-class set."""
    return [
        "data=chars",
        f"data.root={root}",
        f"data.image_size={image_size}",
        "data.val_size=52",
        "data.batch_size=16",
        "data.num_workers=0",
        "trainer=cpu",
        "callbacks.progress_bar=null",
    ]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def chars_root(tmp_path_factory) -> Path:
    """All 52 classes, 4 training and 1 test image each, in Pillow's built-in font."""
    root = tmp_path_factory.mktemp("chars") / "set"
    generate(root, {"train": 4, "test": 1}, font_dirs=[])
    return root


@pytest.fixture
def small_root(tmp_path) -> Path:
    """Three classes that only case and kind tell apart: 0, A, a; 3 training and 1 test image each."""
    root = tmp_path / "small"
    generate(root, {"train": 3, "test": 1}, symbols="0Aa", font_dirs=[])
    return root


def test_the_alphabet_has_report_004s_shape_and_sorts_digits_upper_lower():
    assert (len(DIGITS), len(UPPER), len(LOWER)) == (10, 25, 17)
    assert list(ALPHABET) == sorted(set(ALPHABET))


def test_generator_is_deterministic_for_a_seed_and_never_overwrites(tmp_path):
    generate(tmp_path / "a", {"train": 2, "test": 1}, seed=3, symbols="Aa1", font_dirs=[])
    generate(tmp_path / "b", {"train": 2, "test": 1}, seed=3, symbols="Aa1", font_dirs=[])
    generate(tmp_path / "c", {"train": 2, "test": 1}, seed=4, symbols="Aa1", font_dirs=[])
    written = files(tmp_path / "a")
    assert sorted({Path(name).parent.name for name in written}) == ["digit_1", "lower_a", "upper_A"]
    assert len(written) == 9 and written == files(tmp_path / "b") and written != files(tmp_path / "c")
    with Image.open(tmp_path / "a" / "train" / "lower_a" / "00001.png") as image:
        assert (image.mode, image.size) == ("L", (90, 90))

    with pytest.raises(UserError, match="already exists and is not empty"):
        generate(tmp_path / "a", {"train": 1}, seed=5, font_dirs=[])
    assert files(tmp_path / "a") == written


def test_generator_command_writes_52_classes_and_refuses_a_used_folder(tmp_path, capsys):
    args = ["--out", str(tmp_path / "out"), "--per-class", "1", "--test-per-class", "0", "--size", "32", "--font-dirs"]
    make_chars.main(args)
    assert len(list((tmp_path / "out" / "train").iterdir())) == 52 and not (tmp_path / "out" / "test").exists()
    assert "wrote 52 images" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        make_chars.main(args)
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: ")


def test_system_fonts_are_used_only_when_they_draw_every_symbol(tmp_path):
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    assert len(load_fonts([str(tmp_path)], ALPHABET)) == 1  # the built-in font alone
    assert len(load_fonts(list(FONT_DIRS), ALPHABET)) >= 1


def test_class_folders_keep_upper_and_lower_case_apart(chars_root):
    dm = datamodule(chars_root, num_classes=52, image_size=32, val_size=52)
    dm.setup("fit")
    assert dm.class_names == list(ALPHABET) and dm.state_dict()["class_names"] == dm.class_names
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (156, 52, 52)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape[1:] == (1, 32, 32)
    # The test split holds one image per folder, read in sorted folder order: digit_*, lower_*, upper_*.
    folders = sorted((chars_root / "test").iterdir())
    assert dm.test_set.labels.tolist() == [dm.class_names.index(class_of(f)) for f in folders]
    assert class_of(chars_root / "test" / "upper_A") == "A" and class_of(chars_root / "test" / "lower_a") == "a"


def test_csv_manifests_take_precedence_and_bring_their_own_val_split(small_root):
    train = [
        f"train/{folder}/0000{i}.png,{label}"
        for folder, label in [("upper_A", "A"), ("lower_a", "a"), ("digit_0", "0")]
        for i in (0, 1)
    ]
    (small_root / "train.csv").write_text("path,label\n" + "\n".join(train) + "\n")
    (small_root / "val.csv").write_text("path,label\ntrain/lower_a/00002.png,a\ntrain/upper_A/00002.png,A\n")
    dm = datamodule(small_root)
    dm.setup("fit")
    assert dm.class_names == ["0", "A", "a"]
    assert dm.train_set.labels.tolist() == [1, 1, 2, 2, 0, 0] and dm.val_set.labels.tolist() == [2, 1]
    assert len(dm.test_set) == 3  # test/ still comes from its folders


def test_rgb_and_odd_sized_images_become_grayscale_at_the_configured_size(small_root):
    Image.new("RGB", (50, 30), (255, 0, 0)).save(small_root / "test" / "upper_A" / "00000.png")
    dm = datamodule(small_root, image_size=40)
    dm.setup("test")
    red = dm.test_set.images[dm.test_set.labels.tolist().index(1)]
    assert red.shape == (1, 40, 40) and red.unique().tolist() == [76]  # ITU-R 601 luma of pure red


def test_without_a_test_split_the_validation_split_is_tested(small_root):
    shutil.rmtree(small_root / "test")
    dm = datamodule(small_root)
    dm.setup("fit")
    assert dm.test_set is dm.val_set


def test_statistics_are_cached_beside_the_data_and_recomputed_when_it_changes(small_root, monkeypatch):
    computed = []
    compute = chars.pixel_statistics
    monkeypatch.setattr(chars, "pixel_statistics", lambda images: computed.append(len(images)) or compute(images))
    before = files(small_root)

    first = datamodule(small_root)
    first.setup("fit")
    train_images = torch.cat([first.train_set.images, first.val_set.images])
    assert computed == [9] and first.mean == pytest.approx(compute(train_images)[0])
    assert set(files(small_root)) - set(before) == {STATS_FILE}

    cached = datamodule(small_root)
    cached.setup("fit")
    assert computed == [9] and (cached.mean, cached.std) == (first.mean, first.std)

    Image.new("L", (90, 90), 255).save(small_root / "train" / "upper_A" / "00000.png")
    changed = datamodule(small_root)
    changed.setup("fit")
    assert computed == [9, 9] and changed.mean[0] > first.mean[0]


@pytest.mark.parametrize("pipeline", ["loader", "batched"])
def test_training_augmentation_never_mirrors_a_character(small_root, pipeline):
    config = OmegaConf.load(REPO / "conf" / "data" / "chars.yaml")
    assert config.hflip is False and config.rotation > 0
    dm = datamodule(small_root, rotation=config.rotation, translate=4, hflip=config.hflip, pipeline=pipeline)
    image = torch.zeros(1, 90, 90, dtype=torch.uint8)
    image[:, 20:70, 10:35] = 255  # a bar on the left; a mirror would put it on the right
    if pipeline == "batched":
        views = dm.augment(image.expand(32, -1, -1, -1), step=0)
    else:
        dm.setup("fit")
        views = torch.stack([dm.train_set.transform(image) for _ in range(32)]).float()
    assert not torch.equal(views[0], views[1])  # augmentation is on
    assert (views[..., :45].sum((1, 2, 3)) > 4 * views[..., 45:].sum((1, 2, 3))).all()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "train" / "upper_A" / "00001.png").write_bytes(b"\x89PNG"), r"00001\.png is not a readable"),
        (lambda r: (r / "train" / "lower_a" / "notes.txt").write_text("hello"), r"notes\.txt is not a readable"),
        (lambda r: (r / "train" / "upper_B").mkdir(), r"class folder .*upper_B is empty"),
        (lambda r: (r / "train" / "README").write_text("x"), r"README is not inside a class folder"),
        (lambda r: (r / "train" / "digit_0").rename(r / "train" / "upper_0"), r"upper_0 does not fit .* digit_0"),
        (lambda r: shutil.copytree(r / "test" / "upper_A", r / "test" / "upper_Q"), r"test split .* lacks \(Q\)"),
        (lambda r: (r / "train.csv").write_text("file,class\nx.png,A\n"), r"train\.csv is not a `path,label` CSV"),
        (lambda r: shutil.rmtree(r / "train"), r"no train/ class folders or train\.csv"),
        (lambda r: shutil.rmtree(r), r"data\.root=.*small is not a folder.*make_chars"),
    ],
    ids=[
        "corrupt",
        "not-an-image",
        "empty-class",
        "loose-file",
        "bad-prefix",
        "unknown-test-class",
        "bad-csv",
        "no-train",
        "no-root",
    ],
)
def test_bad_data_is_refused_in_one_line_naming_the_place(small_root, damage, message):
    damage(small_root)
    with pytest.raises(UserError, match=message) as err:
        datamodule(small_root).setup("fit")
    assert "\n" not in str(err.value)


def test_a_class_count_other_than_the_configured_one_says_what_to_set(small_root):
    with pytest.raises(UserError, match="has 3 classes but data.num_classes=52; set data.num_classes=3"):
        datamodule(small_root, num_classes=52).setup("fit")


@pytest.mark.slow
def test_every_model_config_passes_a_fast_dev_run_on_characters(chars_root, tmp_path):
    overrides = [*chars_overrides(chars_root), "data.num_classes=52"]
    assert_every_model_passes_a_fast_dev_run(overrides, tmp_path / "sweep")


@pytest.mark.slow
def test_the_recipe_trains_at_90_pixels_and_its_checkpoint_names_the_classes(chars_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "lit_cifar.train",
        "experiment=chars_resnet_lite",
        *chars_overrides(chars_root, image_size=90),
        "data.batch_size=512",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert (config.optim.lr, config.model.dropout, config.data.hflip) == (0.002, 0.4, False)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["CharsDataModule"]["class_names"] == list(ALPHABET)


def write_emnist(root: Path, split: str = "balanced", n_train: int = 30, n_test: int = 10) -> Path:
    """A tiny EMNIST in torchvision's raw idx layout; like the real files, images are stored transposed."""
    raw = root / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part, n in [("train", n_train), ("test", n_test)]:
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        images[:, 0, :] = 255  # the top row of the upright image
        header = np.array([0x803, n, 28, 28], dtype=">i4").tobytes()
        (raw / f"emnist-{split}-{part}-images-idx3-ubyte").write_bytes(header + images.transpose(0, 2, 1).tobytes())
        labels = rng.integers(0, len(EMNIST.classes_split_dict[split]), n, dtype=np.uint8)
        (raw / f"emnist-{split}-{part}-labels-idx1-ubyte").write_bytes(
            np.array([0x801, n], ">i4").tobytes() + labels.tobytes()
        )
    return root


def emnist(root: Path, **kwargs) -> EMNISTDataModule:
    args = dict(
        root=str(root),
        download=False,
        num_classes=47,
        in_channels=1,
        image_size=28,
        val_size=10,
        batch_size=8,
        num_workers=0,
    )
    return EMNISTDataModule(**{**args, **kwargs})


def test_emnist_reads_torchvisions_files_upright(tmp_path):
    dm = emnist(write_emnist(tmp_path))
    dm.setup("fit")
    assert dm.class_names == EMNIST.classes_split_dict["balanced"] and len(dm.class_names) == 47
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (20, 10, 10)
    assert dm.train_set.images.shape[1:] == (1, 28, 28) and (dm.train_set.images[:, 0, 0] == 255).all()
    assert dm.mean[0] > 0 and dm.std[0] > 0

    resized = emnist(tmp_path, image_size=32)
    resized.setup("fit")
    assert resized.train_set.images.shape[1:] == (1, 32, 32)


def test_emnist_missing_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"EMNIST not found.*data\.download=true"):
        emnist(tmp_path).setup("fit")

    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(EMNIST, "download", offline)
    with pytest.raises(UserError, match=r"could not download EMNIST .*URLError.*EMNIST/raw"):
        emnist(tmp_path, download=True).setup("fit")


def test_emnist_split_with_another_class_count_says_what_to_set():
    with pytest.raises(UserError, match="set data.num_classes=62"):
        emnist("data", split="byclass")


def test_16_bit_images_are_scaled_not_clipped(small_root):
    ramp = (np.arange(90 * 90).reshape(90, 90) * 8).astype(np.uint16)  # 0 … 64792
    path = small_root / "train" / "upper_A" / "00000.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    gray = chars.read_image(path, 90)
    assert np.abs(gray.astype(int) - np.round(ramp / 257)).max() <= 1
    assert (gray == 255).mean() < 0.01  # clipped, 99.6% of the pixels would be 255


@pytest.mark.parametrize("color", [(0, 0, 0), (255, 255, 255), (200, 10, 10)])
def test_a_glyph_drawn_in_the_alpha_channel_is_the_glyph(small_root, color):
    rgba = np.zeros((90, 90, 4), np.uint8)
    rgba[..., :3] = color
    rgba[20:70, 40:50, 3] = 255  # a bar, visible only through its alpha
    path = small_root / "train" / "upper_A" / "00000.png"
    Image.fromarray(rgba, "RGBA").save(path)
    gray = chars.read_image(path, 90)
    assert (gray[20:70, 40:50] == 255).all() and (gray[:20] == 0).all()


def test_colour_under_partial_transparency_is_composited_on_black(small_root):
    la = np.zeros((90, 90, 2), np.uint8)
    la[..., 0] = np.linspace(0, 255, 90, dtype=np.uint8)  # the colour carries the picture
    la[..., 1] = 128
    path = small_root / "train" / "upper_A" / "00000.png"
    Image.fromarray(la, "LA").save(path)
    gray = chars.read_image(path, 90)
    assert gray[0, -1] == 128 and gray[0, 0] == 0


def test_a_fifo_among_the_images_is_refused_without_being_opened(small_root):
    os.mkfifo(small_root / "train" / "upper_A" / "x.png")  # opening it would wait for a writer forever
    with pytest.raises(UserError, match=r"upper_A/x\.png is not a regular file"):
        datamodule(small_root).setup("fit")


def test_a_csv_header_with_spaces_reads_as_path_label(small_root):
    rows = [
        f"train/{f}/0000{i}.png, {c}"
        for f, c in [("upper_A", "A"), ("lower_a", "a"), ("digit_0", "0")]
        for i in (0, 1, 2)
    ]
    (small_root / "train.csv").write_text("path, label\n" + "\n".join(rows) + "\n")
    dm = datamodule(small_root)
    dm.setup("fit")
    assert dm.class_names == ["0", "A", "a"]


def test_a_csv_without_a_path_label_header_names_the_header_it_has(small_root):
    (small_root / "train.csv").write_text("train/upper_A/00000.png,A\n")
    with pytest.raises(
        UserError, match=r"its header is `train/upper_A/00000\.png,A`; make its first line `path,label`"
    ):
        datamodule(small_root).setup("fit")


def test_num_classes_null_is_counted_from_the_folders(small_root):
    dm = datamodule(small_root, num_classes=None)
    assert dm.count_classes() == 3
    dm.setup("fit")
    assert dm.num_classes == 3


def test_val_size_as_a_fraction_and_a_thin_split_is_warned(small_root, caplog):
    dm = datamodule(small_root, val_size=0.34)  # 9 training images: 3 held out
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (6, 3)
    assert "fewer than 3 images of 3 class(es) (0, A, a" in caplog.text
    assert "data.val_size" in caplog.text


def test_the_default_val_size_leaves_most_of_a_small_set_for_training(small_root):
    default = OmegaConf.load(REPO / "conf" / "data" / "chars.yaml").val_size
    dm = datamodule(small_root, val_size=default)
    dm.setup("fit")
    assert len(dm.train_set) == 8 and len(dm.val_set) == 1


@pytest.mark.slow
def test_a_run_counts_the_classes_itself_and_the_model_gets_them(small_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "lit_cifar.train",
        *chars_overrides(small_root),
        "data.val_size=0.34",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.data.num_classes == 3 and config.model.num_classes == 3 and config.module.num_classes == 3


def test_predict_reads_a_character_image_as_training_does(small_root):
    ramp = (np.arange(90 * 90).reshape(90, 90) * 8).astype(np.uint16)
    path = small_root / "train" / "upper_A" / "00000.png"
    Image.fromarray(ramp).save(path)
    assert torch.equal(predict.read_image(path, 1, 90)[0], torch.from_numpy(chars.read_image(path, 90)))
