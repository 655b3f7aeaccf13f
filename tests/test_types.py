"""Each config key's type is declared once (lit_cifar.run.validate.TYPES): every value a config in conf/ gives a
key is of that key's type, and no key of conf/ goes undeclared, so a new key cannot skip the start's check."""

import pytest
import yaml
from conftest import REPO

from lit_cifar.run.validate import TYPES, conforms

GROUPS = ("data", "model", "optim", "scheduler", "trainer", "callbacks", "logger", "debug")


def _leaves(node: object, prefix: str) -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() if not str(key).startswith("_") and key != "defaults"
                for leaf in _leaves(value, f"{prefix}{key}.")]  # fmt: skip
    if isinstance(node, list) or (isinstance(node, str) and "${" in node):
        return []  # lists (widths, devices) and interpolations take their type from elsewhere
    return [(prefix[:-1], node)]


def _defaults() -> list[tuple[str, str, object]]:
    found = []
    for group in GROUPS:
        for path in sorted((REPO / "conf" / group).glob("*.yaml")):
            text = path.read_text()
            config = yaml.safe_load(text) or {}
            prefix = "" if "@package _global_" in text.split("\n", 1)[0] else f"{group}."
            leaves = [(key, value) for key, value in _leaves(config, prefix) if key not in GROUPS]  # scheduler: null
            found += [(f"{group}/{path.name}", key, value) for key, value in leaves]
    train = yaml.safe_load((REPO / "conf" / "train.yaml").read_text())
    found += [
        ("train.yaml", key, value) for key, value in _leaves({k: v for k, v in train.items() if k not in GROUPS}, "")
    ]
    return found


DEFAULTS = _defaults()


@pytest.mark.parametrize(("config", "key", "value"), DEFAULTS, ids=[f"{c}:{k}" for c, k, _ in DEFAULTS])
def test_every_key_of_conf_has_its_type_declared_and_its_default_fits_it(config, key, value):
    assert key in TYPES, f"{config}: {key} has no type in lit_cifar.run.validate.TYPES"
    assert conforms(value, TYPES[key]), f"{config}: {key}={value!r} is not a {TYPES[key]}"


@pytest.mark.parametrize(
    ("value", "declared", "fits"),
    [(True, bool, True), ("no", bool, False), (1, bool, False), (1, float, True), (True, float, False),
     (None, int | None, True), (None, int, False), (2.5, int, False), ("auto", object, True), (16, str | int, True)],
)  # fmt: skip
def test_a_value_conforms_only_to_its_own_type(value, declared, fits):
    assert conforms(value, declared) is fits
