"""Each setting of a table against the best one, with a test at 5% and Holm's correction across the table's
comparisons: what the `vs best` column says (`best`, `tied (p 0.31)`, `worse (p 0.004)`).

Which test depends on what the two settings ran (scipy and statsmodels do the arithmetic):
- seeds both ran (two or more): the paired t-test on their per-seed differences (scipy.stats.ttest_rel). Runs with
  the same seed share their initial weights and data order, so their difference is far less noisy than either mean;
- several seeds each, not shared: Welch's t-test (scipy.stats.ttest_ind, equal_var=False);
- one run against several seeds: Student's t-test, the single run judged by the other's spread between seeds
  (ttest_ind, equal_var=True: the one run adds no variance of its own);
- one run each, of an accuracy: the two-proportion z-test on the evaluation images (statsmodels'
  proportions_ztest). It sees only the noise of measuring on N images, not the spread between seeds;
- one run each of a loss, or an accuracy without its image count: no test (`untested`).

The p-values of one table's comparisons are adjusted together by Holm's step-down method (statsmodels'
multipletests), so that the chance of calling any tied setting `worse` stays at 5%."""

import warnings
from collections import Counter
from dataclasses import dataclass

from lit_cifar.run.commands import command

LEVEL = 0.05
BEST, TIED, WORSE, UNTESTED = "best", "tied", "worse", "untested"
PAIRED, WELCH, ONE_RUN, PROPORTIONS = (
    "paired t-test on the per-seed differences",
    "Welch's t-test",
    "Student's t-test of one run against the other's seeds",
    "two-proportion z-test on the evaluation images (it ignores the spread between seeds)",
)


@dataclass(frozen=True)
class Runs:
    """A setting's values of the ranked metric and the seed of each (None where a run recorded none); `images`:
    how many evaluation images a single run's accuracy was measured on."""

    values: list[float]
    seeds: list[object]
    images: int | None = None

    def by_seed(self) -> dict[object, float]:
        """Each value by its seed, for the seeds that only one run of the setting used."""
        once = [s for s in self.seeds if s is not None and self.seeds.count(s) == 1]
        return {seed: value for seed, value in zip(self.seeds, self.values, strict=True) if seed in once}


@dataclass(frozen=True)
class Test:
    name: str  # one of PAIRED, WELCH, ONE_RUN, PROPORTIONS
    n: str  # what it counted: `3 seeds`, `5 and 3 seeds`, `500 and 500 images`
    p: float  # before Holm's correction


@dataclass(frozen=True)
class Verdict:
    word: str  # BEST, TIED, WORSE or UNTESTED
    test: Test | None = None
    p: float | None = None  # after Holm's correction

    def __str__(self) -> str:
        return self.word if self.p is None else f"{self.word} (p {p_text(self.p)})"


def p_text(p: float) -> str:
    """0.31, 0.004, < 0.001."""
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def _p(result) -> float:
    """A test's two-sided p-value; equal samples (no difference, no spread) give scipy's nan: no evidence."""
    p = float(result.pvalue if hasattr(result, "pvalue") else result[1])
    return 1.0 if p != p else p


def compare_runs(best: Runs, other: Runs, accuracy: bool) -> Test | None:
    """The test of `other` against `best`, two-sided; None when none applies."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nearly equal values: scipy warns, its p still holds
        mine, theirs = best.by_seed(), other.by_seed()
        shared = [seed for seed in mine if seed in theirs]
        if len(shared) >= 2:
            result = stats.ttest_rel([mine[s] for s in shared], [theirs[s] for s in shared])
            return Test(PAIRED, f"{len(shared)} seeds", _p(result))
        sizes = len(best.values), len(other.values)
        if min(sizes) >= 2:
            result = stats.ttest_ind(best.values, other.values, equal_var=False)
            return Test(WELCH, f"{sizes[0]} and {sizes[1]} seeds", _p(result))
        if max(sizes) >= 2:
            result = stats.ttest_ind(best.values, other.values, equal_var=True)
            return Test(ONE_RUN, f"{sizes[0]} and {sizes[1]} seeds", _p(result))
        if accuracy and best.images and other.images:
            return _proportions(best, other)
    return None


def _proportions(best: Runs, other: Runs) -> Test:
    from statsmodels.stats.proportion import proportions_ztest

    images = [best.images, other.images]
    right = [round(runs.values[0] * n) for runs, n in zip((best, other), images, strict=True)]
    return Test(PROPORTIONS, f"{images[0]} and {images[1]} images", _p(proportions_ztest(right, images)))


def verdicts(ranked: list[Runs], accuracy: bool) -> list[Verdict]:
    """The verdict of each setting of `ranked` (best first by its mean) against the first: `best`, `tied` or
    `worse` at 5% once Holm's correction has adjusted the p-values of all the tests together, or `untested`."""
    if not ranked:
        return []
    tests = [compare_runs(ranked[0], other, accuracy) for other in ranked[1:]]
    done = [t for t in tests if t is not None]
    adjusted = iter(holm([t.p for t in done]))
    found = [Verdict(BEST)]
    for t in tests:
        if t is None:
            found.append(Verdict(UNTESTED))
        else:
            p = next(adjusted)
            found.append(Verdict(WORSE if p < LEVEL else TIED, t, p))
    return found


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of `p_values` (one family of tests), in their order."""
    if not p_values:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(p_values, alpha=LEVEL, method="holm")[1]]


def header(found: list[Verdict]) -> str:
    """What the `vs best` column's verdicts mean: each test used, with its n and how many settings it judged,
    the level and the correction."""
    tests = Counter((verdict.test.name, verdict.test.n) for verdict in found if verdict.test is not None)
    untested = sum(verdict.word == UNTESTED for verdict in found)
    if not tests and not untested:
        return ""
    used = "; ".join(f"{name}, n = {n} ({count} setting{'s' * (count > 1)})" for (name, n), count in tests.items())
    lines = [
        f"`vs best`: each setting against the best, two-sided at the {LEVEL:.0%} level with Holm's correction "
        f"across the {tests.total()} comparisons: {used or 'none'}. `tied`: not told apart "
        f"from the best (run more seeds to separate them: {command('rerun')} SWEEP_DIR --top K --seeds N); "
        "`worse`: told apart; p is Holm-adjusted."
    ]
    if untested:
        lines.append(
            f"`{UNTESTED}` ({untested}): a single run each of a loss, or of an accuracy without its image count, "
            "has no test; run more seeds."
        )
    return " ".join(lines)
