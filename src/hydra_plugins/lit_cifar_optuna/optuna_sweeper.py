"""`hydra/sweeper=optuna`: a search that asks an Optuna study (Optuna >= 4, stored in the sweep dir) for each
trial's values, runs the trials through the configured launcher as jobs `trial-NNN`, and tells the study how
each ended: complete (its `optimized_metric`), pruned at an epoch (`lit_cifar.sweep.search`'s trial report), or
failed. Re-running the command into the same sweep dir goes on with the study: finished trials count towards
`n_trials`, a trial whose sweep was killed is run again in its own folder (which resumes its last epoch). With
`confirm.top` set, the search ends with the confirmation stage (lit_cifar.reporting.confirm): its best settings
again with new seeds, so that the winner it prints is a confirmed one."""

import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    def __init__(self, study_name: str, n_trials: int, n_jobs: int | None, monitor: str | None,
                 sampler: DictConfig, pruner: DictConfig, params: DictConfig | None, confirm: DictConfig,
                 direction: str | None = None) -> None:  # fmt: skip
        # `direction` is no longer set here: optimized_metric's own direction is the study's (lit_cifar.run.metrics)
        self.study_name, self.given_direction, self.n_trials, self.n_jobs = study_name, direction, n_trials, n_jobs
        self.monitor, self.sampler, self.pruner, self.confirm = monitor, sampler, pruner, confirm
        self.params = OmegaConf.to_container(params, resolve=False) if params else {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from lit_cifar.run.dirs import is_empty, removed_on_error
        from lit_cifar.run.errors import exit_on_user_error
        from lit_cifar.sweep.jobs import workers_of

        sweep_dir = Path(self.config.hydra.sweep.dir)
        with exit_on_user_error(), removed_on_error(sweep_dir, new=is_empty(sweep_dir)), workers_of(self.launcher):
            self._search(arguments, sweep_dir)

    def _search(self, arguments: list[str], sweep_dir: Path) -> None:
        import optuna
        from hydra.utils import instantiate
        from optuna.trial import TrialState

        from lit_cifar.run.folders import save_sweep_config
        from lit_cifar.run.metrics import direction
        from lit_cifar.sweep.jobs import job_gpus, jobs_per_gpu, parallel_jobs
        from lit_cifar.sweep.search import (
            as_override,
            check_fits_study,
            largest_batch_size,
            open_study,
            search_space,
        )

        space, fixed = search_space(self.params, arguments)
        self._check(space, fixed)
        self.direction = direction(self.config.optimized_metric)
        n_trials, grid = self.n_trials, self.sampler._target_ == "optuna.samplers.GridSampler"
        if grid:  # Optuna's GridSampler stops the study from inside `tell`, which works only in `study.optimize`
            combinations = grid_points(space)  # so a grid is enqueued instead: in order, each combination once
            n_trials = min(n_trials, len(combinations))
        check_fits_study(sweep_dir, self.study_name, space, fixed)  # all checked: from here on, files change
        save_sweep_config(sweep_dir, self.config)
        study = open_study(sweep_dir, self.study_name, self.direction, instantiate(self.pruner))
        # Seeded by the run's seed and the trials done: a re-run proposes new trials, not the first ones again.
        seed = self.sampler.get("seed")
        reseeded = {"seed": seed + len(study.get_trials(deepcopy=False))} if seed is not None else {}
        study.sampler = optuna.samplers.RandomSampler(**reseeded) if grid else instantiate(self.sampler, **reseeded)
        if grid:
            for params in combinations:
                study.enqueue_trial(params, skip_if_exists=True)
        launcher, n_gpus = self.config.hydra.launcher, job_gpus(self.config.trainer)

        def configs() -> list:  # for jobs_per_gpu=auto: a trial at the largest batch size the search may propose
            largest = largest_batch_size(space)
            batch = [] if largest is None else [f"data.batch_size={largest}"]
            return [self.hydra_context.config_loader.load_sweep_config(self.config, fixed + batch)]

        at_once = self.n_jobs or (
            parallel_jobs(launcher.n_jobs, n_gpus, jobs_per_gpu(launcher, n_gpus, sweep_dir, configs))
            if "n_jobs" in launcher
            else launcher.get("array_parallelism", 1)
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
        if self.confirm.top:  # the best trials' settings again with new seeds (lit_cifar.reporting.confirm)
            from lit_cifar.reporting.confirm import confirm

            confirm(self.launcher, sweep_dir, self.confirm.top, self.confirm.seeds, first_job=len(study.trials))
        # the sweep's table (lit_cifar.reporting) names the best setting, and those that cannot be told apart from it

    def _check(self, space: dict, fixed: list[str]) -> None:
        """Before any trial: a search space that Hydra composes (every key exists), a positive n_trials, and a
        pruner that sees every epoch."""
        from hydra.errors import ConfigCompositionException

        from lit_cifar.run.errors import UserError
        from lit_cifar.run.metrics import direction
        from lit_cifar.sweep.search import as_override, monitor_of

        metric = self.config.optimized_metric
        if self.given_direction is not None and self.given_direction != direction(metric):
            raise UserError(
                f"hydra.sweeper.direction={self.given_direction} contradicts optimized_metric={metric}, which is "
                f"better {'higher' if direction(metric) == 'maximize' else 'lower'}; drop hydra.sweeper.direction "
                "(the metric decides it)"
            )
        if self.given_direction is not None:
            log.warning(
                "hydra.sweeper.direction is deprecated: optimized_metric=%s decides it; drop the override", metric
            )
        monitor_of(self.config.hydra.sweeper, metric)  # refuses a monitor that goes the other way
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
                + (
                    f"set scheduler.step_size={job.trainer.max_epochs // 3 or 1}"
                    if job.trainer.max_epochs > 1
                    else "train for 2 epochs or more (trainer.max_epochs), or do not search scheduler.gamma"
                )
            )

    def _launch(self, study, trials: Sequence, overrides) -> None:
        """Run `trials` as jobs (trial N as job N, in `trial-NNN`), then tell the study how each ended."""
        from optuna.trial import TrialState

        from lit_cifar.sweep.search import as_override, trial_name

        sweep_dir = Path(self.config.hydra.sweep.dir)
        runnable = [t for t in trials if self._composes(t, overrides(t), sweep_dir / trial_name(t.number))]
        for start, stop in consecutive_runs([t.number for t in runnable]):  # a launch numbers its jobs from here
            batch = [overrides(t) for t in runnable if start <= t.number < stop]
            self.launcher.launch(batch, initial_job_idx=start)
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

    def _composes(self, trial, lines: list[str], job_dir: Path) -> bool:
        """Whether Hydra composes the trial's config (a key of one model only, with another model drawn, does
        not); if not, the trial is recorded failed in its folder, without a job, and the search goes on."""
        from hydra.errors import ConfigCompositionException

        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, lines)
            return True
        except ConfigCompositionException as err:
            from lit_cifar.run.record import record_failed

            job_dir.mkdir(exist_ok=True)
            record_failed(job_dir, f"its values do not fit the config: {str(err).splitlines()[0]}")
            return False


def _some_value(distribution) -> object:
    """A value inside `distribution`, to check that the search space composes."""
    return distribution.choices[0] if hasattr(distribution, "choices") else distribution.low


def grid_points(space: dict) -> list[dict]:
    """Every combination of the search space's values, in order: each dimension must list its values."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from lit_cifar.run.errors import UserError

    values = {}
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            values[key] = list(dict.fromkeys(d.choices))  # choice(0.1, 0.1): one value
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
    from lit_cifar.run.record import RANKED, read_outcome

    record = read_outcome(job_dir) if job_dir.is_dir() else {}
    if not record:
        return {"reason": f"no {job_dir / 'metrics.json'} (the job died; see its train.log)"}
    if record.get("status") not in (*RANKED, "pruned", "failed"):  # unreadable, or a smoke run: no result
        return {"reason": record.get("reason") or f"status {record.get('status')}"}
    return record
