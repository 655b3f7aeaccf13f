"""The confirmation stage of a sweep or search (`hydra.sweeper.confirm`, or `python -m lit_cifar.rerun SWEEP_DIR
--top K --seeds N`): the K best settings of its table train again with N seeds that none of its own jobs used,
in the same sweep dir, so that the table ranks them by a mean with its interval instead of by one run.

A confirmation job's folder is named by the sweep's swept values and its seed (`optim.lr=0.001,seed=3`, a trial's
searched values and its seed), set as its `hydra.sweep.subdir`: a killed confirmation resumes when the stage runs
again, a finished one is left as it is, and a later re-run that widens `seed` finds it."""

from pathlib import Path

from lit_cifar.reporting.settings import settings
from lit_cifar.reporting.table import collect, compared_keys, optimized_metric, ranked_by
from lit_cifar.run.folders import SweepRecord
from lit_cifar.run.overrides import overrides_of, without_keys
from lit_cifar.run.targets import refuse_code
from lit_cifar.sweep.confirmation import SUBDIR
from lit_cifar.sweep.overrides import refuse_interpolations, run_name


def own_seeds(sweep: SweepRecord) -> list[int]:
    """The seeds the sweep's own jobs train with: the values of a swept `seed`, or the one its config holds."""
    override = sweep.final.get("seed")
    if override is None or not override.is_sweep_override():
        return [int(sweep.config.get("seed"))]
    return [int(seed) for seed in override.sweep_iterator()]  # listed: lit_cifar.sweep.confirmation checked it


def confirmation_jobs(sweep_dir: Path, top: int, seeds: int) -> list[list[str]]:
    """The jobs of the confirmation stage: for each of the `top` best settings of the sweep's table (by their
    mean, its confirmation runs counted), its best run's overrides with each of `seeds` new seeds."""
    sweep = SweepRecord.load(sweep_dir)
    keys, rows, _ = collect(sweep)
    metric = ranked_by(rows, optimized_metric([sweep]))
    ranked = [setting for setting in settings(rows, compared_keys(keys, rows), metric) if setting.value is not None]
    if not ranked:
        return []
    first = max(own_seeds(sweep)) + 1
    named = sorted({*sweep.swept_keys, "seed"})
    jobs = []
    for setting in ranked[:top]:
        best = setting.ok[0]["record"]
        lines = without_keys(best.overrides, {"seed"})
        refuse_code(lines, best.overrides_path, trusted=sweep.task)  # the sweep's command names its own code
        refuse_interpolations([line for line in lines if line not in sweep.task], best.overrides_path)
        for seed in range(first, first + seeds):
            job = [*lines, f"seed={seed}"]
            name = run_name(named, overrides_of(job, as_written=True), "").replace("\\", "\\\\").replace("'", "\\'")
            jobs.append([*job, f"{SUBDIR}='{name}'"])  # quoted: a name holds `=` and `,`
    return jobs


def confirm(launcher, sweep_dir: Path, top: int, seeds: int, first_job: int) -> None:
    """Run the confirmation stage's jobs through a sweeper's `launcher`, numbered from `first_job`."""
    import logging

    log = logging.getLogger(__name__)
    jobs = confirmation_jobs(sweep_dir, top, seeds)
    if not jobs:
        log.warning("no job of %s finished: nothing to confirm", sweep_dir)
        return
    log.info("confirming the %d best settings with %d new seeds each", len(jobs) // seeds, seeds)
    launcher.launch(jobs, initial_job_idx=first_job)
