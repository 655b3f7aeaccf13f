"""How sure a table is of a result: a 95% interval for each setting (whether a setting is told apart from the best
is a test's, lit_cifar.reporting.compare).

- Several seeds of a setting: Student's t interval of their mean, on n - 1 degrees of freedom (n seeds).
- One run: the exact binomial (Clopper-Pearson) interval of an accuracy p measured on N evaluation images, k = pN
  of them right. It counts only the sampling of the evaluation images, not the run-to-run spread of training (seeds
  measure that), so it is the least uncertainty a single run has. It is not symmetric about p and never leaves
  [0, 1]: a run with every image right gets [0.9926, 1] on 500 images, where p ± 1.96 sqrt(p(1 - p) / N) collapses
  to a point.
- A loss from one run has no such formula: it gets no interval."""

import math
import statistics
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __str__(self) -> str:
        return f"[{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class Estimate:
    """A setting's value of a metric: the mean of its n seeds and its 95% interval (None when nothing gives one)."""

    mean: float
    n: int
    interval: Interval | None
    images: int | None = None  # the evaluation images behind a single run's binomial interval

    @property
    def low(self) -> float:
        return self.mean if self.interval is None else self.interval.low

    @property
    def high(self) -> float:
        return self.mean if self.interval is None else self.interval.high

    def __str__(self) -> str:
        if self.interval is None:
            return f"{self.mean:.4f}"
        if self.n > 1:  # Student's t: symmetric about the mean
            return f"{self.mean:.4f} ± {(self.high - self.low) / 2:.4f}"
        return f"{self.mean:.4f} {self.interval}"

    def how(self) -> str:
        """What the interval is, in words: `t, n=3`, `exact binomial, 500 images`, or `no interval`."""
        if self.interval is None:
            return "no interval"
        return f"t, n={self.n}" if self.n > 1 else f"exact binomial, {self.images} images"


def t_quantile(n: int) -> float:
    """The two-sided 95% quantile of Student's t with n - 1 degrees of freedom (12.71 for n = 2)."""
    from scipy.stats import t as student_t  # half a second to import: only where a table has intervals

    return float(student_t.ppf(0.5 + LEVEL / 2, n - 1))


def binomial_interval(accuracy: float, images: int) -> Interval:
    """Clopper-Pearson's exact 95% interval of an accuracy measured on `images` images."""
    from scipy.stats import binomtest

    found = binomtest(round(accuracy * images), images).proportion_ci(confidence_level=LEVEL, method="exact")
    return Interval(float(found.low), float(found.high))


def estimate(values: list[float], images: int | None, accuracy: bool) -> Estimate | None:
    """The estimate of a setting's metric from its seeds' `values` (None without any); `images`: how many
    evaluation images a single seed's accuracy was measured on (None when it did not record them)."""
    if not values:
        return None
    mean, n = statistics.mean(values), len(values)
    if n > 1:
        half = t_quantile(n) * statistics.stdev(values) / math.sqrt(n)
        return Estimate(mean, n, Interval(mean - half, mean + half))
    if accuracy and images and 0.0 <= mean <= 1.0:
        return Estimate(mean, 1, binomial_interval(mean, images), images)
    return Estimate(mean, 1, None, images)
