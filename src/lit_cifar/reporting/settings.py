"""Runs grouped into settings (runs whose overrides differ only in `seed`; and in the code they ran, when runs of
one setting ran different code), each setting's ranked metric with its 95% interval (lit_cifar.reporting.stats)
over its seeds, best first, and each one tested against the best (lit_cifar.reporting.compare: `tied` or `worse`):
what the `By setting` table, the `vs best` column, the plot and the `best:` line all show. Runs of one setting with
the same seed should give the same numbers: they are one observation, by their mean, not several seeds."""

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lit_cifar.reporting.compare import TIED, UNTESTED, Runs, Verdict, header, p_text, verdicts
from lit_cifar.reporting.stats import Estimate, estimate
from lit_cifar.run.commands import command
from lit_cifar.run.config import FREE_TO_CHANGE
from lit_cifar.run.folders import RunRecord
from lit_cifar.run.metrics import higher_is_better, is_accuracy
from lit_cifar.run.overrides import without_keys
from lit_cifar.sweep.search import trial_number

INTERVAL = "95% interval"  # a run's own interval (exact binomial), [low, high] beside its value in the runs table
VERDICT = "vs best"  # `best`, `tied (p 0.31)`, `worse (p 0.004)` or `untested`, for a setting and its runs
CODE = "code"  # a compared key where runs of one setting ran different code (git commits): settings of their own


def changed_settings(overrides: dict[str, str]) -> dict[str, str]:
    """What a run's overrides set that changes what it computes."""
    return {key: value for key, value in overrides.items() if not key.startswith(FREE_TO_CHANGE)}


def setting_id(row: dict, by_code: bool = False) -> tuple:
    """What runs of one setting share: their overrides, but `seed` and those that change nothing computed; with
    `by_code`, also the code they ran."""
    if row["overrides"] is None:
        return (("dir", row["dir"]),)  # a run that recorded no overrides is a setting of its own
    shared = sorted((key, value) for key, value in changed_settings(row["overrides"]).items() if key != "seed")
    return (*shared, *([(CODE, row["code"])] if by_code and row.get("code") else []))


def code_splits(rows: list[dict]) -> bool:
    """Whether runs of one setting ran different code: then the code is one of the keys settings differ in."""
    codes: dict[tuple, set[str]] = {}
    for row in rows:
        if row.get("code"):
            codes.setdefault(setting_id(row), set()).add(row["code"])
    return any(len(found) > 1 for found in codes.values())


def seed_groups(ok: list[dict]) -> list[list[dict]]:
    """A setting's runs by seed: runs with the same seed should give the same numbers, so each group is one
    observation; a run whose seed is unknown is one of its own."""
    groups: dict[tuple, list[dict]] = {}
    for run in ok:
        groups.setdefault(_seed_key(run), []).append(run)
    return list(groups.values())


def evaluated_on(metric: str) -> str:
    """The split a metric is measured on, as a run records its image counts: `val` or `test`."""
    return metric.split("/", 1)[0]


def run_estimate(row: dict, metric: str) -> Estimate | None:
    """One run's value of `metric` with its exact binomial interval (an accuracy, on the images it was measured
    on)."""
    value = row.get(metric)
    if not isinstance(value, int | float):
        return None
    return estimate([value], (row.get("images") or {}).get(evaluated_on(metric)), is_accuracy(metric))


@dataclass
class Setting:
    runs: list[dict]  # in the table's order
    label: str
    value: Estimate | None = None  # of the ranked metric, over the ok runs' seeds
    test: Estimate | None = None  # of test/acc
    verdict: str = ""
    ok: list[dict] = field(default_factory=list)
    seeds: list[list[dict]] = field(default_factory=list)  # the ok runs by seed: one observation each
    comparison: Verdict | None = None  # against the best, with its test
    failed_seeds: int = 0  # seeds on which every run of the setting failed
    tried_seeds: int = 0  # seeds on which a run finished or failed

    @property
    def failure_rate(self) -> float:
        return self.failed_seeds / self.tried_seeds if self.tried_seeds else 0.0

    @property
    def failures(self) -> str:
        return f"failed on {self.failed_seeds} of {self.tried_seeds} seeds"


def _label(runs: list[dict], keys: list[str]) -> str:
    """A setting's name: a search trial's own (`trial-007`), else its values of the compared keys that change
    what it computes, `(default)` where it set none."""
    first = runs[0]
    if (len(runs) == 1 and trial_number(first["job"]) is not None) or first["overrides"] is None:
        return first["job"]
    shown = [key for key in keys if key != "seed" and not key.startswith(FREE_TO_CHANGE)]
    values = {key: first.get(CODE) if key == CODE else first["overrides"].get(key, "(default)") for key in shown}
    return ",".join(f"{key}={value}" for key, value in values.items()) or first["job"]


def seed_values(seeds: list[list[dict]], metric: str) -> list[dict]:
    """A run of each seed that has a value of `metric`, holding the seed's value: the mean of its runs'."""
    measured = []
    for runs in seeds:
        values = [run[metric] for run in runs if run.get(metric) is not None]
        if values:
            measured.append(runs[0] | {metric: statistics.mean(values)})
    return measured


def _estimate(seeds: list[list[dict]], metric: str) -> Estimate | None:
    """The estimate over the seeds of a setting, each seed's value the mean of its runs'."""
    measured = seed_values(seeds, metric)
    if len(measured) == 1:
        return run_estimate(measured[0], metric)
    return estimate([run[metric] for run in measured], None, is_accuracy(metric))


def settings(rows: list[dict], keys: list[str], metric: str) -> list[Setting]:
    """The settings of `rows` (in the table's order), best first by the mean of `metric` over their seeds,
    those without a value last; the best one's verdict is `best`, every other one's `tied` or `worse` by its test
    against the best (`untested` where none applies). The best is one of the settings that failed on the fewest of
    their seeds; one that failed on more and ranks above it says so (`failed on 2 of 3 seeds`) instead of a test."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(setting_id(row, by_code=CODE in keys), []).append(row)
    found = []
    for runs in groups.values():
        ok = [run for run in runs if run["status"] == "ok"]
        seeds = seed_groups(ok)
        value, test = _estimate(seeds, metric), _estimate(seeds, "test/acc")
        setting = Setting(runs, _label(runs, keys), value, test, ok=ok, seeds=seeds)
        finished = {_seed_key(run) for run in ok}
        failed = {_seed_key(run) for run in runs if run["status"] == "failed"} - finished
        setting.failed_seeds, setting.tried_seeds = len(failed), len(finished | failed)
        found.append(setting)
    # A setting that failed on a seed is no winner: the best is one of those that failed least; the rest by value.
    sign = -1 if higher_is_better(metric) else 1
    found.sort(key=lambda s: (s.value is None, 0.0 if s.value is None else sign * s.value.mean))
    valued = [setting for setting in found if setting.value is not None]
    least = min((setting.failure_rate for setting in valued), default=0.0)
    best = next((setting for setting in valued if setting.failure_rate == least), None)
    found.sort(key=lambda s: s is not best)
    # One that failed more is tested against the best where it ranks below it; above it, no test says `better`.
    below = [s for s in valued if s is not best and best and sign * s.value.mean >= sign * best.value.mean]
    tested = [best, *below] if best else []
    for setting, verdict in zip(tested, verdicts([_runs(s, metric) for s in tested], is_accuracy(metric)), strict=True):
        setting.verdict, setting.comparison = str(verdict), verdict
    for setting in valued:
        if setting.comparison is None:  # ranks above the best, but failed on more of its seeds
            setting.verdict = setting.failures
    return found


def _seed_key(run: dict) -> tuple:
    """The seed a run counts as (its folder where it recorded none), as seed_groups counts them."""
    return ("dir", run["dir"]) if run.get("seed") is None else ("seed", str(run["seed"]))


def _runs(setting: Setting, metric: str) -> Runs:
    """A setting's value of `metric` for each of its seeds, as the tests against the best take them."""
    measured = seed_values(setting.seeds, metric)
    seeds = [None if run.get("seed") is None else str(run["seed"]) for run in measured]
    return Runs([run[metric] for run in measured], seeds, setting.value.images)


def mark_runs(found: list[Setting], metric: str) -> None:
    """Each run's own interval of `metric` and its setting's verdict, as columns of the runs table."""
    for setting in found:
        for run in setting.runs:
            own = run_estimate(run, metric) if run["status"] == "ok" else None
            run[INTERVAL] = None if own is None else own.interval
            run[VERDICT] = setting.verdict


def uncertainty_note(found: list[Setting], metric: str) -> str:
    """What the intervals are, for the head of a table."""
    counts = sorted({s.value.images for s in found if s.value and s.value.n == 1 and s.value.images})
    several = any(s.value and s.value.n > 1 for s in found)
    parts = []
    if several:
        parts.append("a setting run with several seeds: Student's t interval of their mean (n - 1 degrees of freedom)")
    if counts:
        split = "validation" if evaluated_on(metric) == "val" else "test"
        images = " or ".join(map(str, counts))
        parts.append(
            f"a single run: the exact binomial (Clopper-Pearson) interval of its accuracy on its {images} {split} "
            "images, [low, high] (the noise of the measurement alone: seeds add the spread of training)"
        )
    if any(s.value and s.value.interval is None for s in found):
        parts.append("no interval where a single run gives none (a loss, or a run that recorded no image count)")
    if not parts:
        return f"{metric}; no setting has a value yet."
    tests = header([setting.comparison for setting in found if setting.comparison is not None])
    return f"{metric}, 95% intervals: {'; '.join(parts)}." + (f"\n\n{tests}" if tests else "")


def train_command(run_dir: Path) -> str:
    """The command that trains a run's setting again as a single run: its overrides, less the sweep's own."""
    kept = without_keys(RunRecord.load(run_dir).overrides or [], {"sweep", "ckpt_path", "rerun_failed"})
    return command("train", *kept)


def best_lines(found: list[Setting], metric: str) -> list[str]:
    """`best: …`, every setting its test does not tell apart from it, those without a test, and the command that
    trains it again."""
    if not found or found[0].value is None:
        return [f"best: none; no run finished with a {metric}"]
    best, others = found[0], [s for s in found[1:] if s.comparison is not None]
    lines = [f"best: {best.label}, {metric}={best.value} ({best.value.how()})"]
    ties = [s for s in others if s.comparison.word == TIED]
    untested = [s for s in others if s.comparison.word == UNTESTED]
    if ties:
        named = ", ".join(f"{s.label} {s.value} (p {p_text(s.comparison.p)})" for s in ties)
        lines.append(f"  not told apart from it at 5% (Holm-adjusted p): {named}")
    if untested:
        named = ", ".join(f"{s.label} {s.value}" for s in untested)
        lines.append(f"  untested against it (one run each has no test): {named}; run more seeds")
    unranked = [s for s in found if s.value is not None and s.comparison is None]  # failed more, valued more
    if unranked:
        named = ", ".join(f"{s.label} {s.value} ({s.failures})" for s in unranked)
        lines.append(f"  not ranked (a setting that failed on a seed): {named}")
    if others and not ties and not untested:
        lines.append("  every other setting is worse at 5% (Holm-adjusted)")
    lines += ["  train it again with:", f"    {train_command(Path(best.ok[0]['dir']))}"]
    return lines


def one_observation_note(found: list[Setting]) -> list[str]:
    """The line that says which runs counted as one seed, since they ran one setting with the same seed."""
    groups = [runs for setting in found for runs in setting.seeds if len(runs) > 1]
    if not groups:
        return []
    named = "; ".join(f"{', '.join(run['dir'] for run in runs)} (seed={runs[0]['seed']})" for runs in groups)
    return [
        "one observation: runs of one setting with the same seed should give the same numbers, so each such group "
        f"counts as one seed, by its mean: {named}"
    ]
