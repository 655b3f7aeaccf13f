"""The sweep guard: before a sweep starts, what would mix results is refused: a sweep dir that holds a
single run, a sweep of another kind (a grid, a search), a re-run that changes what the folder's
sweep holds fixed (for a search also its study, sampler, pruner, metrics and space), several devices per job,
and, without a validation split, what needs one."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.commands import command
from lit_cifar.run.config import flattened
from lit_cifar.run.dirs import lock, release
from lit_cifar.run.errors import UserError
from lit_cifar.run.overrides import as_typed, overrides_of
from lit_cifar.run.record import OUTCOME
from lit_cifar.run.validate import check_needs_validation
from lit_cifar.sweep.confirmation import check_confirmation
from lit_cifar.sweep.gpu_share import forget_measured
from lit_cifar.sweep.jobs import jobs_per_gpu, refuse_several_devices
from lit_cifar.sweep.overrides import _fixed_and_swept, grid_of, multirun_record, sweep_command, sweep_overrides
from lit_cifar.sweep.search import is_search, search_space

# What makes a search another one, besides its overrides: the study its trials go into, how it proposes and
# stops them, and what it optimizes (a metric's direction is the study's) and reports to the pruner.
SEARCH_SETTINGS = (
    "optimized_metric",
    "hydra.sweeper.study_name",
    "hydra.sweeper.sampler",
    "hydra.sweeper.pruner",
    "hydra.sweeper.monitor",
    "hydra.sweeper.direction",
)


def _kind(hydra_cfg: DictConfig) -> str:
    return "an Optuna search (hydra/sweeper=optuna)" if is_search(hydra_cfg) else "a grid sweep (hydra/sweeper=grid)"


def _changed(before: dict, after: dict) -> list[str]:
    return [
        f"{key}: {before.get(key, '(unset)')} -> {after.get(key, '(unset)')}"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def _search_settings(config: DictConfig) -> dict[str, object]:
    found = {}
    for key in SEARCH_SETTINGS:
        value = OmegaConf.select(config, key, default=None, throw_on_missing=False)
        found.update(flattened({key: as_typed(value)}) if isinstance(value, DictConfig) else {key: value})
    return found


def _space(config: DictConfig) -> tuple[dict, dict[str, str]]:
    """A search's space ({key: distribution}) and each of its dimensions as written."""
    lines = grid_of(config.hydra) + as_typed(config.hydra.overrides.task)
    space, _ = search_space({}, lines)
    written = overrides_of(lines, as_written=True)
    return space, {key: written[key] for key in space}


def _search_changes(old: DictConfig, config: DictConfig) -> list[str]:
    """What differs between the search recorded in `old` and the one `config` starts, besides their overrides."""
    changes = _changed(_search_settings(old), _search_settings(config))
    (before, before_written), (after, after_written) = _space(old), _space(config)
    return changes + [
        f"{key}: {before_written[key]} -> {after_written[key]}"
        for key in sorted(before.keys() & after.keys())
        if before[key] != after[key]
    ]


def _epochs_change(old: DictConfig, config: DictConfig) -> list[str]:
    """trainer.max_epochs may only be raised, and in a search not changed: a study compares trials at equal epochs."""
    old_epochs = OmegaConf.select(old, "trainer.max_epochs")
    new_epochs = OmegaConf.select(config, "trainer.max_epochs")
    if isinstance(old_epochs, int) and isinstance(new_epochs, int) and new_epochs < old_epochs:
        return [f"trainer.max_epochs: {old_epochs} -> {new_epochs} (it may only be raised)"]
    if is_search(config.hydra) and old_epochs != new_epochs:
        return [f"trainer.max_epochs: {old_epochs} -> {new_epochs} (a search's trials train alike)"]
    return []


def refuse_another_sweep(sweep_dir: Path, config: DictConfig) -> None:
    """A sweep dir holds one experiment: a grid's re-run may add values to the swept keys (and raise
    trainer.max_epochs), a search's may ask for more trials; neither may hold other settings fixed or vary other
    keys, a search not change its study, its sampler, its pruner, its metrics or its space, and a grid and a search
    never share a folder."""
    if not (sweep_dir / "multirun.yaml").is_file():
        return
    old = multirun_record(sweep_dir)
    if is_search(old.hydra) != is_search(config.hydra):
        raise UserError(
            f"{sweep_dir} holds {_kind(old.hydra)}; {_kind(config.hydra)} would mix with it: re-run it with its own "
            f"command ({sweep_command(sweep_dir)}), or pick a new hydra.sweep.dir"
        )
    task, _, grid = sweep_overrides(sweep_dir)
    before = _fixed_and_swept(task, grid)
    after = _fixed_and_swept(as_typed(config.hydra.overrides.task), grid_of(config.hydra))
    changes = _changed(before[0], after[0])
    if before[1] != after[1]:
        changes.append(f"swept keys: {', '.join(sorted(before[1]))} -> {', '.join(sorted(after[1]))}")
    changes += _epochs_change(old, config)
    if is_search(config.hydra):
        changes += _search_changes(old, config)
    if changes:
        seeds = after[1] - before[1] == {"seed"}  # more seeds for a sweep that held its seed fixed
        hint = f"; to give its settings more seeds: {command('rerun', str(sweep_dir))} --top K --seeds N" * seeds
        what = "search" if is_search(old.hydra) else "sweep"
        raise UserError(
            f"{sweep_dir} holds a {what} of other settings: {'; '.join(changes)}; re-run it with its own "
            f"settings ({sweep_command(sweep_dir)}), or pick a new hydra.sweep.dir{hint}"
        )


RUN_FILES = (".hydra", OUTCOME, "checkpoints")  # what a single run leaves in its folder


def refuse_a_run_dir(sweep_dir: Path) -> None:
    """A sweep writes into a new folder or into its own sweep dir again, never into a single run's folder: that
    run's result would vanish from the sweep's table, and the sweep's files would mix into the run."""
    if not (sweep_dir / "multirun.yaml").is_file() and any((sweep_dir / name).exists() for name in RUN_FILES):
        raise UserError(f"{sweep_dir} holds a single run, not a sweep; pick a new hydra.sweep.dir for the sweep")


def hold_sweep_dir(config: DictConfig) -> int:
    """The checks before a sweep starts (each job checks its own swept values again); then the sweep dir is
    held for this sweep until the returned fd is closed (one sweep at a time)."""
    refuse_several_devices(config)
    jobs_per_gpu(config.hydra.launcher)  # refuses a value that is no positive integer
    check_confirmation(config.hydra.sweeper, grid_of(config.hydra) + as_typed(config.hydra.overrides.task))
    check_needs_validation(config, search=config.hydra.sweeper if is_search(config.hydra) else None)
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    refuse_a_run_dir(sweep_dir)
    fd = lock(sweep_dir, what="sweep")
    try:
        refuse_another_sweep(sweep_dir, config)
    except BaseException:
        release(fd)
        raise
    forget_measured(sweep_dir)
    return fd
