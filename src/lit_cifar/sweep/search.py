"""The Optuna search (`hydra/sweeper=optuna`, `sweep=search`): the search space written in Hydra's sweep
syntax, the study kept in the sweep dir, the callback through which each job reports its epochs to its trial
(and is stopped when the pruner judges it hopeless).

The sweeper asks the study for trials and launches them as jobs through the configured launcher; a job finds
its trial by its job number (the sweeper launches trial N as job N) and the study in `optuna.journal`, a file
that the in-process, joblib and SLURM launchers' jobs all reach. Optuna is imported only where a search runs."""

import math
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig

from lit_cifar.run.errors import UserError
from lit_cifar.run.metrics import higher_is_better
from lit_cifar.run.overrides import as_typed, parse
from lit_cifar.run.targets import refuse_code
from lit_cifar.sweep.confirmation import confirmation_name

STUDY_FILE = "optuna.journal"
SWEEPER = "hydra_plugins.lit_cifar_optuna.optuna_sweeper.OptunaSweeper"


def is_search(hydra_cfg: DictConfig) -> bool:
    return hydra_cfg.sweeper.get("_target_") == SWEEPER


def trial_name(number: int) -> str:
    """A trial's job folder (and TensorBoard run): `trial-007`."""
    return f"trial-{number:03d}"


def trial_number(name: str) -> int | None:
    """The number of the trial whose folder is `name` (`trial-007`: 7); None for any other folder."""
    found = re.fullmatch(r"trial-(\d+)", name)
    return int(found.group(1)) if found else None


def distribution(key: str, sweep: ChoiceSweep | RangeSweep | IntervalSweep):
    """The Optuna distribution of a sweep override: `choice(…)` (or `a,b`) is categorical, `range(…)` an integer
    or stepped float range (its stop excluded, as in Hydra), `interval(lo, hi)` a float range (an integer one
    inside `int(…)`), log-uniform when tagged `tag(log, …)`."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    log = "log" in sweep.tags
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(sweep.list)
    if isinstance(sweep, RangeSweep):
        count = math.ceil((sweep.stop - sweep.start) / sweep.step) if sweep.step else 0
        if count < 1:
            raise UserError(
                f"hydra.sweeper.params: {key}=range({sweep.start}, {sweep.stop}) is empty; e.g. range(1, 5)"
            )
        last = sweep.start + sweep.step * (count - 1)
        integer = all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step))
        kind = IntDistribution if integer else FloatDistribution
        return kind(sweep.start, last, log=True) if log else kind(sweep.start, last, step=sweep.step)
    low, high = sweep.start, sweep.end
    if not low < high or (log and low <= 0):
        hint = "positive, " if log else ""
        raise UserError(
            f"hydra.sweeper.params: {key}=interval({low}, {high}) is empty; it needs {hint}low < high, "
            f"e.g. {key}=tag(log, interval(1e-4, 1e-2))"
        )
    integer = isinstance(low, int) and isinstance(high, int)
    return (IntDistribution if integer else FloatDistribution)(low, high, log=log)


def search_space(params: dict, arguments: list[str]) -> tuple[dict, list[str]]:
    """The search space ({key: distribution}) of the sweeper's `params` and the command line's `arguments`,
    where a key on the command line replaces the same key of `params`; the lines that are no sweep, fixed."""
    lines = [f"{key}={value}" for key, value in params.items()] + arguments
    try:
        parsed = parse(lines)
    except OverrideParseException as err:  # e.g. `choice()`; Hydra's reason is on the line after the first
        reason = (str(err).splitlines() + [""])[1]
        raise UserError(f"hydra.sweeper.params: cannot read {err.override} ({reason})") from None
    by_key = {o.key_or_group: (o, line) for o, line in zip(parsed, lines, strict=True)}
    space, fixed = {}, []
    for key, (override, line) in by_key.items():
        if override.is_sweep_override():
            space[key] = distribution(key, override.value())
        else:
            fixed.append(line)
    return space, fixed


def largest_batch_size(space: dict) -> int | None:
    """The largest `data.batch_size` a search over `space` may propose; None when the search does not vary it."""
    distribution = space.get("data.batch_size")
    if distribution is None:
        return None
    return int(max(distribution.choices) if hasattr(distribution, "choices") else distribution.high)


def as_override(key: str, value: object) -> str:
    """`key=value`, a float rounded to 4 significant digits: what the job trains with and the table shows."""
    return f"{key}={float(f'{value:.4g}') if isinstance(value, float) else value}"


def journal(sweep_dir: Path):
    """The storage of the search in `sweep_dir`: Optuna's journal file, which concurrent jobs append to."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper's own lines say what each trial did
    try:
        return JournalStorage(JournalFileBackend(str(sweep_dir / STUDY_FILE)))
    except OSError as err:
        raise UserError(
            f"cannot write the study to {sweep_dir / STUDY_FILE} ({err.strerror}); pick a writable hydra.sweep.dir"
        ) from None


def open_study(sweep_dir: Path, name: str, direction: str, pruner):
    """The study of the search in `sweep_dir`: created on its first start, continued by a re-run."""
    import optuna

    storage = journal(sweep_dir)
    return optuna.create_study(
        storage=storage, study_name=name, direction=direction, pruner=pruner, load_if_exists=True
    )


def check_fits_study(sweep_dir: Path, name: str, space: dict, fixed: list[str]) -> None:
    """Refuse a search space whose list of choices for a key differs from the one the study in `sweep_dir` drew
    from: Optuna cannot change a categorical dimension (ranges may change). Refuse a trial left running, which runs
    again with the values the study's file holds, when one outside the space chooses code that the search's own
    lines (`fixed`) do not (that file is data)."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=name, storage=journal(sweep_dir))
    except KeyError:  # no such study yet
        return
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.RUNNING, TrialState.WAITING):  # what runs next, with the values the file holds
            values = trial.params if trial.state == TrialState.RUNNING else trial.system_attrs.get("fixed_params", {})
            outside = [as_override(key, value) for key, value in values.items() if key not in space]
            refuse_code(outside, sweep_dir / STUDY_FILE, trusted=fixed)
            _refuse_outside_space(sweep_dir / STUDY_FILE, trial, values, space)
        for key, before in trial.distributions.items():
            now = space.get(key)
            if isinstance(before, CategoricalDistribution) and now is not None and now != before:
                choices = ",".join(map(str, before.choices))
                raise UserError(
                    f"{key} drew from choice({choices}) in this search; a list of choices cannot change within "
                    "one study: search with it again, or pick a new hydra.sweep.dir"
                )


def _refuse_outside_space(study_file: Path, trial, values: dict, space: dict) -> None:
    """A trial about to run again (queued, or left running) whose value of a searched key lies outside the space:
    Optuna would run it anyway, with a warning only."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    for key, value in values.items():
        dimension = space.get(key)
        if dimension is None:
            continue
        if isinstance(dimension, CategoricalDistribution):
            inside, allowed = value in dimension.choices, f"choice({','.join(map(str, dimension.choices))})"
        else:
            inside = isinstance(value, int | float) and dimension.low <= value <= dimension.high
            allowed = f"from {dimension.low:g} to {dimension.high:g}"
        if not inside:
            state = "queued" if trial.state == TrialState.WAITING else "left running"
            raise UserError(
                f"{study_file} holds trial {trial.number}, {state}, with {as_override(key, value)}, outside this "
                f"search's space ({key} {allowed}); that file is data: search again in a new hydra.sweep.dir"
            )


def trial_of(sweeper: DictConfig, sweep_dir: Path, number: int):
    """Trial `number` of the search in `sweep_dir`, to report to, judged by the sweeper's pruner."""
    import optuna
    from hydra.utils import instantiate

    storage = journal(sweep_dir)
    study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=instantiate(sweeper.pruner))
    study_id = storage.get_study_id_from_name(sweeper.study_name)
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))


def monitor_of(sweeper: DictConfig, metric: str) -> str:
    """What a search's jobs report to their trials after every epoch: `hydra.sweeper.monitor`, by default the
    validation metric that goes the way `metric` (the optimized one) does, so the pruner judges the same way."""
    default = "val/acc" if higher_is_better(metric) else "val/loss"
    monitor = sweeper.get("monitor") or default
    if higher_is_better(monitor) != higher_is_better(metric):
        raise UserError(
            f"hydra.sweeper.monitor={monitor} goes the other way from optimized_metric={metric}, so the pruner would "
            f"stop the best trials; monitor {default} instead"
        )
    return monitor


def trial_callbacks(metric: str) -> list:
    """What a search job adds to its callbacks: the report to its trial (`metric`: the optimized one)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or not is_search(hydra_cfg):
        return []
    if confirmation_name(as_typed(hydra_cfg.overrides.hydra)):
        return []  # a confirmation job (lit_cifar.reporting.confirm): a setting's new seed, no trial of the study
    from lit_cifar.sweep.pruning import TrialReport

    trial = trial_of(hydra_cfg.sweeper, Path(hydra_cfg.sweep.dir), hydra_cfg.job.num)
    return [TrialReport(trial, monitor_of(hydra_cfg.sweeper, metric))]
