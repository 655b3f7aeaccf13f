"""A sweep's overrides: the name of each job's folder (its swept values), the jobs a grid expands to, the commands
that re-run a sweep, go on with its confirmation or with a single run, and what of a sweep's record (a
lit_cifar.run.folders.SweepRecord) `rerun` may replay."""

import hashlib
from pathlib import Path

from omegaconf import DictConfig

from lit_cifar.run.commands import command
from lit_cifar.run.config import FREE_TO_CHANGE
from lit_cifar.run.errors import UserError
from lit_cifar.run.folders import RunRecord, SweepRecord, grid_lines
from lit_cifar.run.overrides import as_typed, key_of, overrides_of, parse, without_keys
from lit_cifar.run.targets import code_in_override, refuse_code
from lit_cifar.sweep.confirmation import KEYS as CONFIRM_KEYS
from lit_cifar.sweep.confirmation import confirmation_name
from lit_cifar.sweep.search import SWEEPER, is_search, trial_name


def grid_of(hydra_cfg: DictConfig) -> list[str]:
    """A sweep's `hydra.sweeper.params` (set by the named `sweep=` configs) as override lines."""
    params = hydra_cfg.sweeper.get("params")
    return grid_lines(as_typed(params)) if params else []


def searches(sweep: SweepRecord) -> bool:
    """Whether `sweep` is an Optuna search (see `is_search`)."""
    return sweep.sweeper == SWEEPER


def run_name(keys: list[str], overrides: dict[str, str], job: str) -> str:
    """`data.batch_size=512,optim.lr=0.002`: the job's values of the swept keys, sorted by key (the job
    number when nothing is swept). It names the job's folder and its TensorBoard run, so a job is found
    again by what it trains, whatever its number in a longer or reordered grid."""
    name = ",".join(f"{k}={overrides[k]}" for k in sorted(overrides) if k in keys).replace("/", "_")
    if len(name.encode()) > 200:  # a folder name has at most 255 bytes: keep the start, and a hash for the rest
        name = f"{name.encode()[:180].decode(errors='ignore')}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name or job


def replayed_hydra(sweep: SweepRecord) -> list[str]:
    """The sweep's Hydra overrides that its re-run command replays: its sweep dir is the re-run's own, -m sets the
    mode, and a confirmation is asked for each time."""
    return without_keys(sweep.hydra_lines, {"hydra.sweep.dir", "hydra.mode", *CONFIRM_KEYS})


def expected_jobs(sweep: SweepRecord) -> list[list[str]]:
    """Every job's override list, as Hydra's basic sweeper expands `sweep`."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if searches(sweep):
        return []  # a search's trials are asked for one by one: none is pending before it runs
    (jobs,) = BasicSweeper.split_arguments(parse(sweep.grid + sweep.task), None)
    return jobs


def sweep_arguments(sweep: SweepRecord, changes: list[str] = ()) -> list[str]:
    """The `lit_cifar.train` arguments that re-run `sweep`, with `changes` (override lines) in place of its own
    values for the same keys: it skips finished jobs, resumes killed ones and runs those that never started."""
    kept = without_keys(replayed_hydra(sweep) + sweep.task, {key_of(line) for line in changes})
    return ["-m", *kept, *changes, f"hydra.sweep.dir={sweep.dir.resolve()}"]  # from any working directory


def refuse_replayed_code(sweep: SweepRecord, changes: list[str]) -> None:
    """What `rerun` would replay of the sweep's record (its task and Hydra overrides, its grid), less the keys that
    `changes` (rerun's own command line) sets, must choose no code (see `refuse_code`) and hold no interpolation."""
    replayed = without_keys(replayed_hydra(sweep) + sweep.task + sweep.grid, {key_of(line) for line in changes})
    refuse_code(replayed, sweep.path)
    refuse_interpolations(replayed, sweep.path)


def refuse_interpolations(lines: list[str], source: Path) -> None:
    """Override lines read from the file `source` are replayed as written, so the jobs would resolve an
    interpolation in one (a `${lit_cifar.claim:…}` claims a folder): the first such line is refused in one line."""
    for line in lines:
        if "${" in line.partition("=")[2]:
            raise UserError(
                f"{source}'s override {line} is an interpolation, which the jobs would resolve; a stored record is "
                f"data: give {key_of(line)} on the command line, or restore the file"
            )


def train_command(arguments: list[str]) -> str:
    return command("train", *arguments)


def sweep_command(sweep: SweepRecord) -> str:
    """The command that re-runs `sweep` (see `sweep_arguments`)."""
    return train_command(sweep_arguments(sweep))


def confirmation_command(sweep_dir: Path, hydra_lines: list[str], task: list[str], confirm) -> str | None:
    """For a job of the confirmation stage of the sweep in `sweep_dir` (given its Hydra and task overrides and its
    `hydra.sweeper.confirm`: a live config's, or a stored one's `Stored`), the command that goes on with that stage,
    `rerun SWEEP_DIR --top K --seeds N` (the sweep's command does not confirm), with the job's overrides that choose
    code of the user's own, since rerun replays none from the folder; None for a job of the sweep itself."""
    if not confirmation_name(hydra_lines):
        return None
    top, seeds = confirm.get("top"), confirm.get("seeds")
    own_code = [line for line in [*hydra_lines, *task] if code_in_override(line)]
    return command("rerun", str(sweep_dir), "--top", str(top), "--seeds", str(seeds), *own_code)


def confirmation_resume(job: RunRecord) -> str | None:
    """The command that goes on with an unfinished confirmation job (see `confirmation_command`), from its record;
    None for a job of the sweep itself, or one that ended."""
    if job.outcome or not job.hydra.tree:
        return None
    confirm = job.hydra.section("sweeper.confirm")
    return confirmation_command(job.dir.parent, job.hydra_overrides(), job.overrides or [], confirm)


def run_command(overrides: list[str], run_dir: Path) -> str:
    """The command that goes on with the single run in `run_dir`, given the overrides it was started with."""
    given = without_keys(overrides, {"ckpt_path", "hydra.run.dir", "hydra.mode"})
    return train_command([*given, "ckpt_path=last", f"hydra.run.dir={run_dir}"])


def job_name(hydra_cfg: DictConfig, overrides: list[str], job_num: int) -> str:
    """A sweep job's folder and TensorBoard run: a confirmation job's own, `trial-007` in a search, else its
    swept values (`run_name`)."""
    if name := confirmation_name(overrides):
        return name
    if is_search(hydra_cfg):
        return trial_name(job_num)
    keys = SweepRecord.load(Path(hydra_cfg.sweep.dir)).swept_keys
    return run_name(keys, overrides_of(overrides, as_written=True), str(job_num))


def _fixed_and_swept(task: list[str], grid: list[str]) -> tuple[dict[str, str], set[str]]:
    """A sweep's settings that change what its jobs compute, held fixed ({key: value}), and the keys it varies."""
    parsed = parse(grid + task)
    fixed = {o.key_or_group: o.get_value_element_as_str() for o in parsed if not o.is_sweep_override()}
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    free = (*FREE_TO_CHANGE, "trainer.max_epochs")  # the jobs themselves check that epochs only go up
    return {k: v for k, v in fixed.items() if k not in swept and not k.startswith(free)}, swept
