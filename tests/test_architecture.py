"""The package's shape: its import contracts (pyproject.toml, [tool.importlinter]) hold, and every `_target_`
in conf/ names an object that exists, so a module moved without its configs fails here, not in a user's run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from hydra.utils import get_object


def test_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed: pip install -e '.[dev]'"
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _targets(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return found + [t for value in node.values() for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


TARGETS = sorted(
    {(str(path.relative_to(REPO)), target) for path in (REPO / "conf").rglob("*.yaml")
     for target in _targets(yaml.safe_load(path.read_text()))}
)  # fmt: skip


@pytest.mark.parametrize(("config", "target"), TARGETS, ids=[f"{c}:{t}" for c, t in TARGETS])
def test_every_config_target_exists(config: str, target: str):
    get_object(target)
