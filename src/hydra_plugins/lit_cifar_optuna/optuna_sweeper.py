"""`hydra/sweeper=optuna`: a search that asks an Optuna study (Optuna >= 4, stored in the sweep dir) for each
trial's values, runs the trials through the configured launcher as jobs `trial-NNN`, and tells the study how
each ended: complete (its `optimized_metric`), pruned at an epoch (`lit_cifar.search`'s trial report), or
failed. Re-running the command into the same sweep dir goes on with the study: finished trials count towards
`n_trials`, a trial whose sweep was killed is run again in its own folder (which resumes its last epoch)."""

import itertools
import json
import logging
import math
import shlex
from collections.abc import Sequence
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    def __init__(self, study_name: str, direction: str, n_trials: int, n_jobs: int | None, monitor: str,
                 sampler: DictConfig, pruner: DictConfig, params: DictConfig | None) -> None:  # fmt: skip
        self.study_name, self.direction, self.n_trials, self.n_jobs = study_name, direction, n_trials, n_jobs
        self.monitor, self.sampler, self.pruner = monitor, sampler, pruner
        self.params = OmegaConf.to_container(params, resolve=False) if params else {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from lit_cifar.errors import exit_on_user_error

        with exit_on_user_error():
            self._search(arguments)

    def _search(self, arguments: list[str]) -> None:
        import optuna
        from hydra.utils import instantiate
        from optuna.trial import TrialState

        from lit_cifar.search import as_override, open_study, search_space
        from lit_cifar.sweep import parallel_jobs

        space, fixed = search_space(self.params, arguments)
        self._check(space, fixed)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        n_trials, grid = self.n_trials, self.sampler._target_ == "optuna.samplers.GridSampler"
        # Optuna's GridSampler stops the study from inside `tell`, which only works in `study.optimize`: a grid is
        # enqueued instead, in order, each combination once (a wider grid on a re-run adds the new ones).
        sampler = optuna.samplers.RandomSampler() if grid else instantiate(self.sampler)
        study = open_study(sweep_dir, self.study_name, self.direction, sampler, instantiate(self.pruner))
        if grid:
            combinations = grid_points(space)
            for params in combinations:
                study.enqueue_trial(params, skip_if_exists=True)
            n_trials = min(n_trials, len(combinations))
        launcher = self.config.hydra.launcher
        at_once = self.n_jobs or (
            parallel_jobs(launcher.n_jobs) if "n_jobs" in launcher else launcher.get("array_parallelism", 1)
        )

        def overrides(trial: optuna.trial.FrozenTrial | optuna.Trial) -> list[str]:
            return fixed + [as_override(key, value) for key, value in trial.params.items()]

        # Trials left running by a killed sweep (this sweep holds the sweep dir, so none is live) run again.
        stale = [t for t in study.get_trials(deepcopy=False, states=[TrialState.RUNNING])]
        for first in range(0, len(stale), at_once):
            self._launch(study, stale[first : first + at_once], overrides)
        started = [s for s in TrialState if s != TrialState.WAITING]  # enqueued ones are asked for in turn
        while (room := n_trials - len(study.get_trials(deepcopy=False, states=started))) > 0:
            self._launch(study, [study.ask(space) for _ in range(min(at_once, room))], overrides)
        self._summary(study, sweep_dir)

    def _check(self, space: dict, fixed: list[str]) -> None:
        """Before any trial: a search space that Hydra composes (every key exists), a positive n_trials, and a
        pruner that sees every epoch."""
        from hydra.errors import ConfigCompositionException

        from lit_cifar.errors import UserError
        from lit_cifar.search import as_override

        if not isinstance(self.n_trials, int) or self.n_trials <= 0:
            raise UserError(f"hydra.sweeper.n_trials={self.n_trials} must be a positive integer, e.g. 20")
        if not space:
            raise UserError(
                "the search has nothing to search: give hydra.sweeper.params or a sweep override, "
                "e.g. 'optim.lr=tag(log, interval(1e-4, 1e-2))'"
            )
        probe = fixed + [as_override(key, _some_value(d)) for key, d in space.items()]
        try:
            job = self.hydra_context.config_loader.load_sweep_config(self.config, probe)
        except ConfigCompositionException as err:
            first = str(err).splitlines()[0]
            raise UserError(f"the search space does not fit the config: {first}; check hydra.sweeper.params") from None
        every = job.trainer.get("check_val_every_n_epoch") or 1
        if not self.pruner._target_.endswith("NopPruner") and every != 1:
            raise UserError(
                f"trainer.check_val_every_n_epoch={every}: the pruner judges a trial after every epoch; "
                "validate every epoch, or search with hydra/sweeper/pruner=none"
            )
        if "scheduler.gamma" in space and job.scheduler.get("step_size", 0) >= job.trainer.max_epochs:
            raise UserError(
                f"scheduler.gamma is searched, but StepLR steps every scheduler.step_size={job.scheduler.step_size} "
                f"epochs and trainer.max_epochs={job.trainer.max_epochs}: gamma would never apply; "
                f"set scheduler.step_size={max(1, job.trainer.max_epochs // 3)}"
            )

    def _launch(self, study, trials: Sequence, overrides) -> None:
        """Run `trials` as jobs (trial N as job N, in `trial-NNN`), then tell the study how each ended."""
        from optuna.trial import TrialState

        from lit_cifar.search import as_override, trial_name

        numbers = [t.number for t in trials]
        for start, stop in consecutive_runs(numbers):  # a launch numbers its jobs from initial_job_idx up
            batch = [overrides(t) for t in trials if start <= t.number < stop]
            self.launcher.launch(batch, initial_job_idx=start)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        for trial in trials:
            record = _record(sweep_dir / trial_name(trial.number))
            status, value = record.get("status"), (record.get("metrics") or {}).get(self.config.optimized_metric)
            if status == "ok" and isinstance(value, int | float) and math.isfinite(value):
                study.tell(trial.number, value, skip_if_finished=True)
                outcome = f"complete, {self.config.optimized_metric}={value:.4f}"
            elif status == "pruned":
                study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
                outcome = f"pruned after epoch {record.get('pruned_at_epoch')}"
            else:
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                outcome = f"failed: {record.get('reason') or f'{self.config.optimized_metric} is {value}'}"
            values = " ".join(as_override(key, value) for key, value in trial.params.items())
            log.info("%s: %s (%s)", trial_name(trial.number), outcome, values)

    def _summary(self, study, sweep_dir: Path) -> None:
        from optuna.trial import TrialState

        from lit_cifar.search import trial_name

        done = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
        if not done:
            log.warning("no trial completed in %s", sweep_dir)
            return
        best = study.best_trial
        lines = _task_overrides(sweep_dir / trial_name(best.number))
        command = shlex.join(["python", "-m", "lit_cifar.train", *[o for o in lines if not o.startswith("sweep=")]])
        print(f"best: {trial_name(best.number)}, {self.config.optimized_metric}={best.value:.4f}; train it again with:")
        print(f"  {command}")


def _some_value(distribution) -> object:
    """A value inside `distribution`, to check that the search space composes."""
    return distribution.choices[0] if hasattr(distribution, "choices") else distribution.low


def grid_points(space: dict) -> list[dict]:
    """Every combination of the search space's values, in order: each dimension must list its values."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from lit_cifar.errors import UserError

    values = {}
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            values[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            values[key] = list(range(d.low, d.high + 1, d.step))
        else:
            raise UserError(f"hydra/sweeper/sampler=grid needs listed values, but {key} is a range; use choice(...)")
    return [dict(zip(values, combination, strict=True)) for combination in itertools.product(*values.values())]


def consecutive_runs(numbers: list[int]) -> list[tuple[int, int]]:
    """[2, 3, 7] -> [(2, 4), (7, 8)]: stretches of consecutive numbers, each as (first, last + 1)."""
    runs: list[tuple[int, int]] = []
    for n in sorted(numbers):
        if runs and runs[-1][1] == n:
            runs[-1] = (runs[-1][0], n + 1)
        else:
            runs.append((n, n + 1))
    return runs


def _record(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {"reason": f"no readable {job_dir / 'metrics.json'} (the job died; see its train.log)"}


def _task_overrides(job_dir: Path) -> list[str]:
    return OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))
