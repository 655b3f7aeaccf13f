"""How sure a table is of a result: a 95% interval for each setting, and which settings cannot be told apart
from the best.

- Several seeds of a setting: Student's t interval of their mean, on n - 1 degrees of freedom.
- One run: the binomial standard error of an accuracy p measured on N evaluation images, sqrt(p(1 - p) / N),
  times 1.96. It counts only the sampling of the evaluation images, not the run-to-run spread of training
  (seeds measure that), so it is the least uncertainty a single run has.
- A loss from one run has no such formula: it gets no interval, and is tied only with an equal value.

Two settings cannot be told apart when their intervals overlap."""

import math
import statistics
from dataclasses import dataclass
from statistics import NormalDist

LEVEL = 0.95
Z = NormalDist().inv_cdf(0.5 + LEVEL / 2)  # 1.96


@dataclass(frozen=True)
class Estimate:
    """A setting's value of a metric: the mean of its n runs and the half-width of its 95% interval (None when
    nothing gives one)."""

    mean: float
    n: int
    half_width: float | None
    images: int | None = None  # the evaluation images behind a single run's binomial interval

    @property
    def low(self) -> float:
        return self.mean - (self.half_width or 0.0)

    @property
    def high(self) -> float:
        return self.mean + (self.half_width or 0.0)

    def __str__(self) -> str:
        return f"{self.mean:.4f}" if self.half_width is None else f"{self.mean:.4f} ± {self.half_width:.4f}"

    def how(self) -> str:
        """What the interval is, in words: `t, n=3`, `binomial, 500 images`, or `no interval`."""
        if self.half_width is None:
            return "no interval"
        return f"t, n={self.n}" if self.n > 1 else f"binomial, {self.images} images"


def t_quantile(n: int) -> float:
    """The two-sided 95% quantile of Student's t with n - 1 degrees of freedom (12.71 for n = 2)."""
    from scipy.stats import t as student_t  # half a second to import: only where seeds are pooled

    return float(student_t.ppf(0.5 + LEVEL / 2, n - 1))


def estimate(values: list[float], images: int | None, accuracy: bool) -> Estimate | None:
    """The estimate of a setting's metric from its runs' `values` (None without any); `images`: how many
    evaluation images a single run's accuracy was measured on (None when it did not record them)."""
    if not values:
        return None
    mean, n = statistics.mean(values), len(values)
    if n > 1:
        return Estimate(mean, n, t_quantile(n) * statistics.stdev(values) / math.sqrt(n))
    if accuracy and images and 0.0 <= mean <= 1.0:
        return Estimate(mean, 1, Z * math.sqrt(mean * (1 - mean) / images), images)
    return Estimate(mean, 1, None, images)


def tied(a: Estimate, b: Estimate) -> bool:
    """Whether the two cannot be told apart: their intervals overlap (equal values without intervals)."""
    return a.low <= b.high and b.low <= a.high
