"""The sweep guard: before a sweep starts, what would mix results is refused: a sweep dir that holds a
single run, a sweep of another kind (a grid, a search), a re-run that changes what the folder's
sweep holds fixed (for a search also its study, sampler, pruner, metrics and space), several devices per job,
and, without a validation split, what needs one."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.commands import command
from lit_cifar.run.config import FREE_TO_CHANGE, flattened
from lit_cifar.run.dirs import lock, release
from lit_cifar.run.errors import UserError
from lit_cifar.run.folders import SweepRecord, is_sweep_dir, run_left_in
from lit_cifar.run.overrides import as_typed, overrides_of, parse
from lit_cifar.run.validate import check_needs_validation
from lit_cifar.sweep.confirmation import check_confirmation
from lit_cifar.sweep.gpu_share import forget_measured
from lit_cifar.sweep.jobs import jobs_per_gpu, refuse_several_devices
from lit_cifar.sweep.overrides import _fixed_and_swept, grid_of, searches, sweep_command
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


def _kind(search: bool) -> str:
    return "an Optuna search (hydra/sweeper=optuna)" if search else "a grid sweep (hydra/sweeper=grid)"


def _changed(before: dict, after: dict) -> list[str]:
    return [
        f"{key}: {before.get(key, '(unset)')} -> {after.get(key, '(unset)')}"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def _selected(config: DictConfig, key: str) -> object:
    """`config`'s value of the dotted `key`, a part of it as typed (its interpolations unresolved, as a record's)."""
    value = OmegaConf.select(config, key, default=None, throw_on_missing=False)
    return as_typed(value) if isinstance(value, DictConfig) else value


def _search_settings(value_of) -> dict[str, object]:
    """The `SEARCH_SETTINGS`, each read by `value_of(key)`, their parts flattened."""
    found = {}
    for key in SEARCH_SETTINGS:
        value = value_of(key)
        found.update(flattened({key: value}) if isinstance(value, dict) else {key: value})
    return found


def _space(lines: list[str]) -> tuple[dict, dict[str, str]]:
    """A search's space ({key: distribution}) from its grid and task overrides, and each dimension as written."""
    space, _ = search_space({}, lines)
    written = overrides_of(lines, as_written=True)
    return space, {key: written[key] for key in space}


def _search_changes(old: SweepRecord, config: DictConfig) -> list[str]:
    """What differs between the search recorded in `old` and the one `config` starts, besides their overrides."""
    changes = _changed(_search_settings(old.config.get), _search_settings(lambda key: _selected(config, key)))
    (before, before_written) = _space(old.grid + old.task)
    (after, after_written) = _space(grid_of(config.hydra) + as_typed(config.hydra.overrides.task))
    return changes + [
        f"{key}: {before_written[key]} -> {after_written[key]}"
        for key in sorted(before.keys() & after.keys())
        if before[key] != after[key]
    ]


def _epochs_change(old: SweepRecord, config: DictConfig) -> list[str]:
    """trainer.max_epochs may only be raised, and in a search not changed: a study compares trials at equal epochs."""
    old_epochs = old.config.get("trainer.max_epochs")
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
    if not is_sweep_dir(sweep_dir):
        return
    old = SweepRecord.load(sweep_dir)
    if searches(old) != is_search(config.hydra):
        raise UserError(
            f"{sweep_dir} holds {_kind(searches(old))}; {_kind(is_search(config.hydra))} would mix with it: re-run it "
            f"with its own command ({sweep_command(old)}), or pick a new hydra.sweep.dir"
        )
    before = _fixed_and_swept(old.task, old.grid)
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
        what = "search" if searches(old) else "sweep"
        raise UserError(
            f"{sweep_dir} holds a {what} of other settings: {'; '.join(changes)}; re-run it with its own "
            f"settings ({sweep_command(old)}), or pick a new hydra.sweep.dir{hint}"
        )


def refuse_a_run_dir(sweep_dir: Path) -> None:
    """A sweep writes into a new folder or into its own sweep dir again, never into a single run's folder: that
    run's result would vanish from the sweep's table, and the sweep's files would mix into the run."""
    if not is_sweep_dir(sweep_dir) and run_left_in(sweep_dir):
        raise UserError(f"{sweep_dir} holds a single run, not a sweep; pick a new hydra.sweep.dir for the sweep")


def refuse_swept_labels(config: DictConfig) -> None:
    """A key that changes nothing a job computes (a name, tags, the loader's workers), swept, would train one setting
    several times with the same seed: the table counts it once, the time spent buys nothing. (A device count swept
    fails each of its jobs: `refuse_several_devices`.)"""
    for override in parse(grid_of(config.hydra) + as_typed(config.hydra.overrides.task)):
        key = override.key_or_group
        if override.is_sweep_override() and key.startswith(FREE_TO_CHANGE) and key != "trainer.devices":
            values = list(override.sweep_string_iterator()) if override.is_discrete_sweep() else ["VALUE"]
            times = f"{len(values)} times" if override.is_discrete_sweep() else "once per trial"
            raise UserError(
                f"{key} is swept ({override.input_line}), but it changes nothing a job computes: its jobs would be "
                f"one setting run {times}; give it one value ({key}={values[0]}), or sweep a setting"
            )


def hold_sweep_dir(config: DictConfig) -> int:
    """The checks before a sweep starts (each job checks its own swept values again); then the sweep dir is
    held for this sweep until the returned fd is closed (one sweep at a time)."""
    refuse_swept_labels(config)
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
