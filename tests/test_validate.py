"""Each config key's type is stated once, by the class its config builds (the annotations of the `__init__` its
`_target_` names, read by lit_cifar.run.declared) or, for the keys no class takes, by lit_cifar.run.validate.Run:
every value a config in conf/ gives a key is of that key's type, and no key of conf/ goes undeclared, so a new key
cannot skip the start's check."""

import re

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lit_cifar.run.errors import UserError
from lit_cifar.run.validate import check_values, conforms, declared_leaves

OPTIONS = ("data", "model", "optim", "scheduler", "trainer", "callbacks", "logger", "debug", "experiment")


def _composed() -> list[tuple[str, object]]:
    """(name, composed config) of train.yaml with each option of each group, and of tune.yaml."""
    found = []
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        for group in OPTIONS:
            for path in sorted((REPO / "conf" / group).glob("*.yaml")):
                found.append((f"{group}/{path.stem}", compose("train", [f"{group}={path.stem}"])))
        found.append(("tune", compose("tune")))
    return found


COMPOSED = _composed()
# Functions whose **kwargs reach wandb.init and MLFlowLogger's through WandbLogger's own **kwargs: no annotation
# names those keys, so wandb and MLflow check them when the logger is built.
OPEN_ENDED = ("logger.wandb.", "logger.mlflow.")


def _undeclared_or_misfit(cfg) -> list[str]:
    found = []
    for key, value, declared in declared_leaves(cfg):
        if key in OPTIONS or key.startswith(OPEN_ENDED):  # a group chosen empty: scheduler=none
            continue
        if value is None and key.startswith(("callbacks.", "logger.")):  # an entry turned off
            continue
        if declared is None:
            found.append(f"{key} is no argument of its class (nor of lit_cifar.run.validate.Run)")
        elif declared.kinds is not None and not conforms(value, declared.kinds):
            found.append(f"{key}={value!r} is not a {declared.kinds}")
    return found


@pytest.mark.parametrize(("config", "cfg"), COMPOSED, ids=[name for name, _ in COMPOSED])
def test_every_key_of_conf_has_its_type_declared_and_its_default_fits_it_and_its_range(config, cfg):
    assert _undeclared_or_misfit(cfg) == []
    check_values(cfg)


@pytest.mark.parametrize(
    ("value", "declared", "fits"),
    [(True, (bool,), True), ("no", (bool,), False), (1, (bool,), False), (1, (float,), True), (True, (float,), False),
     (None, (int, type(None)), True), (None, (int,), False), (2.5, (int,), False), (16, (str, int), True)],
)  # fmt: skip
def test_a_value_conforms_only_to_its_own_type(value, declared, fits):
    assert conforms(value, declared) is fits


DATA = {"_target_": "lit_cifar.data.cifar10.CIFAR10DataModule"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"data": {**DATA, "shift_padding": "mirror"}}, "data.shift_padding=mirror must be one of zeros, reflect"),
        ({"data": {**DATA, "pipeline": "gpu"}}, "data.pipeline=gpu must be 'loader' (per-image augmentation"),
        ({"data": {"batch_size": 0}}, "data.batch_size=0 must be a positive integer"),  # evaluate's, no _target_
        (
            {"optim": {"_target_": "lit_cifar.training.optim.build_optimizer", "units": "per_example"}},
            "optim.units=per_example must be one of torch, per_1024",
        ),
        (
            {"scheduler": {"_target_": "lit_cifar.training.schedules.warmup_linear", "warmup_fraction": 1.0}},
            "scheduler.warmup_fraction=1.0 must be a fraction in [0, 1)",
        ),
        ({"tune": {"steps": 5}}, "tune.steps=5 must be a whole number of at least 20"),
    ],
)
def test_a_range_beside_its_class_is_checked_at_the_start(config, message):
    # moved here from the classes' own checks, which the start's check now covers (tests/test_device_path.py,
    # tests/test_recipe.py held them)
    with pytest.raises(UserError, match=re.escape(message)):
        check_values(OmegaConf.create(config))


def test_a_class_is_typed_from_its_source_without_running_it(tmp_path, monkeypatch):
    # The start reads the annotations before torch loads: the module is parsed, never imported or run.
    marker = tmp_path / "marker"
    (tmp_path / "typed_elsewhere.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\n"
        "class Base:\n    def __init__(self, width: int = 4, name: str = 'a') -> None: ...\n\n"
        "class Net(Base):\n    def __init__(self, depth: int | None = None, **kwargs) -> None: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for key, value, words in [("depth", "abc", "a whole number or null"), ("width", 1.5, "a whole number")]:
        config = {"model": {"_target_": "typed_elsewhere.Net", key: value}}
        with pytest.raises(UserError, match=re.escape(f"model.{key}=")) as refused:
            check_values(OmegaConf.create(config))
        assert words in str(refused.value)
    check_values(OmegaConf.create({"model": {"_target_": "typed_elsewhere.Net", "depth": None, "name": "b"}}))
    assert not marker.exists()
