"""A sweep's overrides: the keys it varies, the name of each job's folder (its swept values), the commands that
re-run a sweep, go on with its confirmation or with a single run, and what of a sweep's record `rerun` may replay."""

import hashlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.commands import command
from lit_cifar.run.config import FREE_TO_CHANGE
from lit_cifar.run.errors import UserError
from lit_cifar.run.overrides import as_typed, key_of, last_of_each, overrides_of, parse, without_keys
from lit_cifar.run.record import OUTCOME
from lit_cifar.run.targets import code_in_override, refuse_code
from lit_cifar.sweep.confirmation import KEYS as CONFIRM_KEYS
from lit_cifar.sweep.confirmation import confirmation_name
from lit_cifar.sweep.search import is_search, trial_name


def grid_of(hydra_cfg: DictConfig) -> list[str]:
    """A sweep's `hydra.sweeper.params` (set by the named `sweep=` configs) as override lines."""
    params = hydra_cfg.sweeper.get("params")
    return [f"{key}={value}" for key, value in as_typed(params).items()] if params else []


def hydra_overrides(hydra_cfg: DictConfig) -> list[str]:
    """The Hydra overrides a sweep's command line gave (launcher, sweep dir, …); none where a record has no list."""
    found = hydra_cfg.overrides.get("hydra")
    return [] if found is None else as_typed(found)


def multirun_record(sweep_dir: Path) -> DictConfig:
    """The sweep's `multirun.yaml`, refused in one line unless it holds what Hydra writes there: override lines
    (lists of strings) that parse, under `hydra.overrides`."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        raise UserError(f"{sweep_dir} is not a sweep dir (no multirun.yaml); pass a multirun/DATE/TIME folder")
    try:
        record = OmegaConf.load(path)
        lines = [as_typed(record.hydra.overrides.task), hydra_overrides(record.hydra)]
        if not all(isinstance(found, list) and all(isinstance(line, str) for line in found) for found in lines):
            raise ValueError("its hydra.overrides are not lists of override lines")
        parse([*lines[0], *lines[1], *grid_of(record.hydra)])
    except Exception as err:  # cut short by a kill, edited by hand, or not Hydra's
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{path} is not a sweep record Hydra wrote ({reason}); restore it from the sweep's own copy, or start "
            "the sweep again in a new hydra.sweep.dir"
        ) from None
    return record


def final_overrides(sweep_dir: Path) -> dict:
    """A sweep's overrides by key, the command line's over `hydra.sweeper.params`, from its `multirun.yaml`."""
    hydra_cfg = multirun_record(sweep_dir).hydra
    return last_of_each(grid_of(hydra_cfg) + as_typed(hydra_cfg.overrides.task))  # the command line's come last


def swept_keys(sweep_dir: Path) -> list[str]:
    """The keys a sweep varies: those in sweep syntax (`a=1,2`, `range(…)`, `interval(…)`) on its command line
    or in `hydra.sweeper.params` (the named `sweep=` configs)."""
    return [key for key, override in final_overrides(sweep_dir).items() if override.is_sweep_override()]


def log_scaled_keys(sweep_dir: Path) -> set[str]:
    """The swept keys tagged `tag(log, …)`: a search draws them log-uniformly, and a plot shows them so."""
    final = final_overrides(sweep_dir)
    return {key for key, o in final.items() if o.is_sweep_override() and "log" in o.value().tags}


def run_name(keys: list[str], overrides: dict[str, str], job: str) -> str:
    """`data.batch_size=512,optim.lr=0.002`: the job's values of the swept keys, sorted by key (the job
    number when nothing is swept). It names the job's folder and its TensorBoard run, so a job is found
    again by what it trains, whatever its number in a longer or reordered grid."""
    name = ",".join(f"{k}={overrides[k]}" for k in sorted(overrides) if k in keys).replace("/", "_")
    if len(name.encode()) > 200:  # a folder name has at most 255 bytes: keep the start, and a hash for the rest
        name = f"{name.encode()[:180].decode(errors='ignore')}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name or job


def sweep_overrides(sweep_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """From the `multirun.yaml` of the sweep in `sweep_dir`: its command line's task overrides, its Hydra
    overrides (launcher, …) and its grid (`hydra.sweeper.params`, where a named `sweep=` config sets one)."""
    hydra_cfg = multirun_record(sweep_dir).hydra
    task = as_typed(hydra_cfg.overrides.task)
    # the re-run command sets its sweep dir; -m sets the mode; a confirmation is asked for each time
    hydra_only = without_keys(hydra_overrides(hydra_cfg), {"hydra.sweep.dir", "hydra.mode", *CONFIRM_KEYS})
    return task, hydra_only, grid_of(hydra_cfg)


def expected_jobs(sweep_dir: Path) -> list[list[str]]:
    """Every job's override list, as Hydra's basic sweeper expands the sweep in `sweep_dir`."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if is_search(OmegaConf.load(sweep_dir / "multirun.yaml").hydra):
        return []  # a search's trials are asked for one by one: none is pending before it runs
    task, _, grid = sweep_overrides(sweep_dir)
    (jobs,) = BasicSweeper.split_arguments(parse(grid + task), None)
    return jobs


def sweep_arguments(sweep_dir: Path, changes: list[str] = ()) -> list[str]:
    """The `lit_cifar.train` arguments that re-run the sweep in `sweep_dir`, with `changes` (override lines)
    in place of its own values for the same keys: it skips finished jobs, resumes killed ones and runs those
    that never started."""
    task, hydra_only, _ = sweep_overrides(sweep_dir)
    kept = without_keys(hydra_only + task, {key_of(line) for line in changes})
    return ["-m", *kept, *changes, f"hydra.sweep.dir={sweep_dir.resolve()}"]  # from any working directory


def refuse_replayed_code(sweep_dir: Path, changes: list[str]) -> None:
    """What `rerun` would replay of the sweep's record (its task and Hydra overrides, its grid), less the keys that
    `changes` (rerun's own command line) sets, must choose no code (see `refuse_code`)."""
    task, hydra_only, grid = sweep_overrides(sweep_dir)
    refuse_code(without_keys(hydra_only + task + grid, {key_of(line) for line in changes}), sweep_dir / "multirun.yaml")


def train_command(arguments: list[str]) -> str:
    return command("train", *arguments)


def sweep_command(sweep_dir: Path) -> str:
    """The command that re-runs the sweep in `sweep_dir` (see `sweep_arguments`)."""
    return train_command(sweep_arguments(sweep_dir))


def confirmation_command(sweep_dir: Path, hydra_cfg: DictConfig) -> str | None:
    """For a job of the confirmation stage of the sweep in `sweep_dir` (`hydra_cfg`: the job's Hydra config), the
    command that goes on with that stage, `rerun SWEEP_DIR --top K --seeds N` (the sweep's command does not confirm),
    with the job's overrides that choose code of the user's own, since rerun replays none from the folder; None for
    a job of the sweep itself."""
    if not confirmation_name(as_typed(hydra_cfg.overrides.hydra)):
        return None
    confirm = hydra_cfg.sweeper.confirm
    lines = [*as_typed(hydra_cfg.overrides.hydra), *as_typed(hydra_cfg.overrides.task)]
    own_code = [line for line in lines if code_in_override(line)]
    return command("rerun", str(sweep_dir), "--top", str(confirm.top), "--seeds", str(confirm.seeds), *own_code)


def confirmation_resume(job_dir: Path) -> str | None:
    """The command that goes on with an unfinished confirmation job in `job_dir` (see `confirmation_command`), from
    its `.hydra/hydra.yaml`; None for a job of the sweep itself, or one that ended."""
    hydra_yaml = job_dir / ".hydra" / "hydra.yaml"
    if (job_dir / OUTCOME).exists() or not hydra_yaml.is_file():
        return None
    return confirmation_command(job_dir.parent, OmegaConf.load(hydra_yaml).hydra)


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
    return run_name(swept_keys(Path(hydra_cfg.sweep.dir)), overrides_of(overrides, as_written=True), str(job_num))


def _fixed_and_swept(task: list[str], grid: list[str]) -> tuple[dict[str, str], set[str]]:
    """A sweep's settings that change what its jobs compute, held fixed ({key: value}), and the keys it varies."""
    parsed = parse(grid + task)
    fixed = {o.key_or_group: o.get_value_element_as_str() for o in parsed if not o.is_sweep_override()}
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    free = (*FREE_TO_CHANGE, "trainer.max_epochs")  # the jobs themselves check that epochs only go up
    return {k: v for k, v in fixed.items() if k not in swept and not k.startswith(free)}, swept
