"""A run's and a sweep's folder are read in one place (lit_cifar.run.folders), as data: a stored yaml's
interpolations are never resolved, and one used as a value is refused in one line naming the file."""

import ast
from pathlib import Path

import pytest
from conftest import REPO, run_cli, tiny_cifar_overrides
from omegaconf import OmegaConf
from test_report import make_run, make_sweep, ok

from lit_cifar.reporting.confirm import confirmation_jobs
from lit_cifar.run.errors import UserError
from lit_cifar.sweep.resolvers import register

RECORD_FILES = (".hydra", "overrides.yaml", "hydra.yaml", "resolved.yaml", "multirun.yaml")


@pytest.fixture(autouse=True)
def resolvers():
    """The project's resolvers registered, as they are in every command that trains (a sweep's own report too)."""
    register()


def claim(marker: Path) -> str:
    return "${lit_cifar.claim:" + str(marker) + "}"


def set_in(path: Path, key: str, value: object) -> None:
    config = OmegaConf.load(path)
    OmegaConf.update(config, key, value, force_add=True)
    OmegaConf.save(config, path)


def one_error(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    return line


def test_a_sweeps_stored_epochs_interpolation_claims_no_folder_when_the_sweep_starts_again(tmp_path, cifar_root):
    """The guard compares a re-run with the folder's multirun.yaml: it reads that file's values, never resolves them."""
    sweep, marker = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3"), tmp_path / "claimed"
    set_in(sweep / "multirun.yaml", "trainer.max_epochs", claim(marker))
    args = [*tiny_cifar_overrides(cifar_root), "optim.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep}"]
    line = one_error(run_cli("lit_cifar.train", "-m", *args))
    assert line.startswith(f"error: {sweep / 'multirun.yaml'}: trainer.max_epochs is {claim(marker)}, an interpolation")
    assert not marker.exists()


def test_a_sweeps_stored_metric_interpolation_claims_no_folder_in_its_report(tmp_path):
    sweep, marker = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3"), tmp_path / "claimed"
    set_in(sweep / "multirun.yaml", "optimized_metric", claim(marker))
    make_run(sweep / "optim.lr=0.001", ["optim.lr=0.001"], ok(0.5, 0.5))
    line = one_error(run_cli("lit_cifar.report", str(sweep)))
    assert line.startswith(f"error: {sweep / 'multirun.yaml'}: optimized_metric is {claim(marker)}, an interpolation")
    assert not marker.exists()


def test_a_confirmation_jobs_stored_interpolation_claims_no_folder_in_its_report(tmp_path):
    """An interrupted confirmation job's row says how to go on with it, from its hydra.yaml's confirm settings."""
    sweep, marker = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3"), tmp_path / "claimed"
    job = make_run(sweep / "optim.lr=0.001,seed=43", ["optim.lr=0.001", "seed=43"])
    hydra = {"overrides": {"hydra": ["hydra.sweep.subdir='optim.lr=0.001,seed=43'"], "task": ["optim.lr=0.001"]},
             "sweeper": {"confirm": {"top": claim(marker), "seeds": 1}}}  # fmt: skip
    OmegaConf.save({"hydra": hydra}, job / ".hydra" / "hydra.yaml")
    line = one_error(run_cli("lit_cifar.report", str(sweep)))
    assert line.startswith(f"error: {job / '.hydra' / 'hydra.yaml'}: hydra.sweeper.confirm.top is {claim(marker)}")
    assert not marker.exists()


def test_a_sweeps_stored_seed_interpolation_claims_no_folder_when_its_settings_are_confirmed(tmp_path):
    sweep, marker = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3"), tmp_path / "claimed"
    set_in(sweep / "multirun.yaml", "seed", claim(marker))
    make_run(sweep / "optim.lr=0.001", ["optim.lr=0.001"], ok(0.5, 0.5))
    with pytest.raises(UserError, match=f"^{sweep / 'multirun.yaml'}: seed is .* an interpolation"):
        confirmation_jobs(sweep, top=1, seeds=1)
    assert not marker.exists()


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code (f-string parts included), its docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_only_lit_cifar_run_names_the_files_of_a_run_or_sweep_record():
    """A run's `.hydra/` files and a sweep's multirun.yaml are read (and named) in lit_cifar.run alone; elsewhere a
    folder is taken as a RunRecord or a SweepRecord. Docstrings and comments may name them."""
    owner = REPO / "src" / "lit_cifar" / "run"
    found = [
        f"{path.relative_to(REPO)}: {text!r}"
        for path in sorted((REPO / "src").rglob("*.py"))
        if owner not in path.parents
        for text in _code_strings(path)
        if any(name in text for name in RECORD_FILES)
    ]
    assert not found, "read these through lit_cifar.run.folders:\n" + "\n".join(found)


def test_a_sweeps_stored_override_interpolation_is_not_replayed_by_rerun(tmp_path, cifar_root):
    """rerun replays the overrides of the sweep's record: one that is an interpolation would be resolved by the jobs."""
    marker = tmp_path / "claimed"
    sweep = make_sweep(tmp_path / "s", *tiny_cifar_overrides(cifar_root), f"seed={claim(marker)}")
    line = one_error(run_cli("lit_cifar.rerun", str(sweep)))
    assert line.startswith(f"error: {sweep / 'multirun.yaml'}'s override seed={claim(marker)} is an interpolation")
    assert not marker.exists()


def test_a_jobs_stored_override_interpolation_is_not_replayed_by_its_confirmation(tmp_path):
    sweep, marker = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3"), tmp_path / "claimed"
    set_in(sweep / "multirun.yaml", "seed", 0)
    best = make_run(sweep / "optim.lr=0.001", ["optim.lr=0.001", f"data.root={claim(marker)}"], ok(0.5, 0.5))
    expected = f"^{best / '.hydra' / 'overrides.yaml'}'s override data.root=.* is an interpolation"
    with pytest.raises(UserError, match=expected):
        confirmation_jobs(sweep, top=1, seeds=1)
    assert not marker.exists()
