"""What a sweep says beyond its best setting: which swept keys matter, and whether more trials would help.

Which keys matter (a sweep over two keys or more: a grid, or a search's trials):
- each value of a key: the mean of the ranked metric over the runs that used it (whatever the other keys were),
  with Student's t 95% interval over those runs (their spread holds the other keys' effects too). A key a search
  drew from a range (`interval(…)`) is cut into three groups of equal size, low to high;
- each key's effect: an F test in a linear model of the metric fitted by least squares (statsmodels' ols, its
  anova_lm with Type II sums of squares, so that each key is tested after the others whatever their order).
  A full grid (a finished run for every combination of the keys' values) is an n-way ANOVA: each key a factor,
  the seed a block when the runs used several. Otherwise the same model, with a key drawn from a range as a straight
  line (on its log10 for a rate or a key searched on a log scale); listed values are a factor however many. A key
  cannot be judged when it has one value, when the runs leave no degree of freedom for the error, or when its values
  change together with another key's.

Would more trials help (three finished runs or more): the expected best of n trials drawn like these, against n,
by the empirical-CDF estimator of Dodge et al. (2019, "Show Your Work"): with the N values sorted worst to best,
E[best of n] = sum_i v_(i) ((i/N)^n - ((i-1)/N)^n)."""

import math
import statistics
import warnings
from dataclasses import dataclass

from lit_cifar.reporting.rows import row_value
from lit_cifar.reporting.settings import CODE, Setting, seed_values
from lit_cifar.reporting.stats import t_quantile

BINS = 3
RATE_KEYS = ("lr", "weight_decay", "eta_min", "max_lr")  # keys compared on a log axis, as keys searched on one


@dataclass(frozen=True)
class Level:
    """A value of a key (or a range of a sampled key's values) and the runs that used it."""

    value: str
    mean: float
    half_width: float | None  # of the 95% interval; None from one run
    n: int


@dataclass(frozen=True)
class KeyEffect:
    key: str
    levels: list[Level]
    f: float | None = None
    df: tuple[int, int] | None = None  # the key's and the error's degrees of freedom
    p: float | None = None
    why_not: str = ""  # why the key cannot be judged ("" when it was tested)

    def effect(self, level: float = 0.05) -> str:
        """`matters (F(1, 8) = 31.2, p < 0.001)`, `no effect found (F(…) = 0.4, p 0.55)` or why it was not judged."""
        if self.why_not:
            return f"cannot be judged: {self.why_not}"
        p = "p < 0.001" if self.p < 0.001 else f"p {self.p:.2g}"
        word = "matters" if self.p < level else "no effect found"
        return f"{word} (F({self.df[0]}, {self.df[1]}) = {self.f:.2f}, {p})"


@dataclass(frozen=True)
class Effects:
    keys: list[KeyEffect]
    model: str  # the model in words, naming the test
    n: int  # runs


def is_log(key: str, values: list[float], log_keys: set[str]) -> bool:
    """Whether a key's numbers are compared on a log scale: a rate, or a key searched on one."""
    return (key in log_keys or key.rsplit(".", 1)[-1] in RATE_KEYS) and min(values) > 0


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def level_names(column: list[str], sampled: bool) -> list[str]:
    """The level each run counts in: its value, or for a key drawn from a range its third of it (`0.0001–0.0004`)."""
    if not sampled:
        return column
    ordered = sorted(_numbers(column))
    size = math.ceil(len(ordered) / BINS)
    groups = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    group_of = {x: group for group in groups for x in group}  # a value sampled twice stays in its first group
    return [f"{group_of[x][0]:.3g}–{group_of[x][-1]:.3g}" for x in _numbers(column)]


def _order(level: str) -> tuple:
    """Numbers (a range by its low end) in their order, then words."""
    numbers = _numbers([level.split("–")[0]])
    return (0, numbers[0], level) if numbers else (1, 0.0, level)


def mean_interval(values: list[float]) -> tuple[float, float | None]:
    """The mean and the half-width of its Student's t 95% interval (n - 1 degrees of freedom); None from one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, t_quantile(len(values)) * statistics.stdev(values) / math.sqrt(len(values))


def levels(key: str, runs: list[dict[str, str]], values: list[float], sampled: bool) -> list[Level]:
    """Each value of `key` (each third of a sampled key's range) with the mean of the runs that used it."""
    groups: dict[str, list[float]] = {}
    for level, y in zip(level_names([run[key] for run in runs], sampled), values, strict=True):
        groups.setdefault(level, []).append(y)
    return [Level(name, *mean_interval(ys), len(ys)) for name, ys in sorted(groups.items(), key=lambda g: _order(g[0]))]


def full_grid(runs: list[dict[str, str]], keys: list[str], sampled: set[str]) -> bool:
    """A run for every combination of the keys' values, none of them drawn from a range."""
    if sampled & set(keys):
        return False
    columns = [[run[key] for run in runs] for key in keys]
    return len({tuple(run[key] for key in keys) for run in runs}) == math.prod(len(set(c)) for c in columns)


def key_effects(
    runs: list[dict[str, str]], values: list[float], seeds: list[object], keys: list[str], log_keys: set[str],
    sampled: set[str],
) -> Effects:  # fmt: skip
    """Which of `keys` matter for `values` (one per run; `runs`: each run's value of every key, as text; `seeds`:
    each run's seed, None where unknown; `sampled`: the keys a search drew from a range, numbers on a line)."""
    sampled = {key for key in sampled if _numbers([run[key] for run in runs]) is not None}
    varied = [key for key in keys if len({run[key] for run in runs}) > 1]
    full = bool(varied) and full_grid(runs, varied, sampled)
    blocked = None not in seeds and len(set(seeds)) > 1
    terms, columns = [], {"y": values}
    for n, key in enumerate(varied):
        column = [run[key] for run in runs]
        if key in sampled:
            numbers = _numbers(column)
            log = is_log(key, numbers, log_keys)
            columns[f"x{n}"] = [math.log10(x) for x in numbers] if log else numbers
            terms.append((key, f"x{n}", f"log10({key})" if log else key))
        else:
            columns[f"x{n}"] = column
            terms.append((key, f"C(x{n})", key))
    if blocked:
        columns["seed"] = [str(seed) for seed in seeds]
    tested = _anova(columns, [term for _, term, _ in terms] + (["C(seed)"] if blocked else []))
    term_of = {key: term for key, term, _ in terms}
    found = [
        _effect(key, levels(key, runs, values, key in sampled), tested, term_of.get(key), len(runs)) for key in keys
    ]
    named = " + ".join(words for _, _, words in terms) + (" + seed (a block)" if blocked else "")
    if not terms:
        return Effects(found, "no model: no key took two values in the finished runs", len(runs))
    model = f"{len(varied)}-way ANOVA" if full else "linear model"
    return Effects(found, f"{model}, {named}; Type II sums of squares, an F test per key (statsmodels)", len(runs))


def _effect(key: str, found: list[Level], tested: dict, term: str | None, runs: int) -> KeyEffect:
    """The key's levels and its F test, or why it has none."""
    if term is None:
        return KeyEffect(key, found, why_not=f"one value ({found[0].value})" if found else "no run")
    if not tested:
        return KeyEffect(key, found, why_not=f"no error to test against: too few runs ({runs}), or they fit exactly")
    f, df_key, df_error, p = tested[term]
    if math.isnan(f) or math.isnan(p):
        return KeyEffect(key, found, why_not="its values change together with another key's or the seed's")
    return KeyEffect(key, found, f, (df_key, df_error), p)


def _anova(columns: dict[str, list], terms: list[str]) -> dict[str, tuple[float, int, int, float]]:
    """Each term's (F, its degrees of freedom, the error's, p) from ols + anova_lm (Type II), nan for a term the
    others' columns already hold (confounded); {} when the runs leave no degree of freedom for the error, or no
    error (the keys fit every run exactly)."""
    if not terms:
        return {}
    import pandas as pd
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a rank-deficient design (confounded keys): told below by the ranks
        fitted = smf.ols("y ~ " + " + ".join(terms), data=pd.DataFrame(columns)).fit()
        residual = round(fitted.df_resid)
        if residual < 1 or fitted.ssr <= 1e-12 * fitted.centered_tss:  # an F of rounding noise says nothing
            return {}
        table = anova_lm(fitted, typ=2)
    found = {}
    for term in terms:
        f, p = float(table.loc[term, "F"]), float(table.loc[term, "PR(>F)"])
        if not _separable(fitted.model.exog, fitted.model.exog_names, term):
            f = p = math.nan
        found[term] = (f, round(table.loc[term, "df"]), residual, p)
    return found


def _separable(design, names: list[str], term: str) -> bool:
    """Whether the term's columns add to what the design's other columns span."""
    import numpy as np

    own = [i for i, name in enumerate(names) if name == term or name.startswith(term + "[")]
    rank = np.linalg.matrix_rank
    return rank(design) > rank(np.delete(design, own, axis=1))


def expected_best(values: list[float], n: int, higher: bool = True) -> float:
    """The expected best of `n` trials drawn from the empirical distribution of `values` (Dodge et al. 2019)."""
    ordered = sorted(values, reverse=not higher)  # worst first
    size = len(ordered)
    return sum(v * ((i / size) ** n - ((i - 1) / size) ** n) for i, v in enumerate(ordered, start=1))


def more_trials_line(values: list[float], higher: bool = True) -> str:
    """`expected best of 12 trials 0.431; of 24: 0.437`: the N finished runs, and twice as many."""
    size = len(values)
    return (
        f"expected best of {size} trials {expected_best(values, size, higher):.4f}; "
        f"of {2 * size}: {expected_best(values, 2 * size, higher):.4f}"
    )


def of_settings(
    found: list[Setting], keys: list[str], metric: str, log_keys: set[str], sampled: set[str]
) -> tuple[Effects | None, list[float]]:
    """What a table's settings say beyond their ranking: which of the compared `keys` matter (None unless two keys
    or more were compared), and each seed's value of `metric` (the draws of the expected best). Each seed of a
    setting is one run here, as in its ranking."""
    runs, values, seeds = [], [], []
    for setting in found:
        for run in seed_values(setting.seeds, metric):
            runs.append({key: str(row_value(run, key)) for key in keys})
            values.append(run[metric])
            seeds.append(None if run.get("seed") is None else str(run["seed"]))
    swept = [key for key in keys if key not in ("seed", CODE)]
    judged = key_effects(runs, values, seeds, swept, log_keys, sampled) if len(swept) > 1 and runs else None
    return judged, values


def effects_table(found: Effects, metric: str) -> list[dict]:
    """The `Which keys matter` table: a row per value of each key, its key's effect on the key's first row."""
    rows = []
    for effect in found.keys:
        for n, level in enumerate(effect.levels):
            value = f"{level.mean:.4f}" + (f" ± {level.half_width:.4f}" if level.half_width is not None else "")
            verdict = effect.effect() if n == 0 else ""
            rows.append({"key": effect.key, "value": level.value, "n": level.n, metric: value, "effect": verdict})
    return rows


def effects_note(found: Effects, metric: str) -> str:
    """What the `Which keys matter` table holds, for its head."""
    return (
        f"{found.model}; {found.n} runs. Each value: the mean {metric} of the runs that used it, whatever the other "
        "keys were, ± the half-width of Student's t 95% interval over them (their spread holds the other keys' "
        "effects too). A key `matters` when its F test says so at the 5% level."
    )


def more_trials_note(values: list[float], higher: bool = True) -> str:
    """The `expected best` line and how it was estimated."""
    return (
        f"{more_trials_line(values, higher)} (Dodge et al. 2019's expected maximum by the empirical-CDF estimator over "
        f"the {len(values)} finished runs, each a draw: E[best of n] = sum_i v_(i) ((i/N)^n - ((i-1)/N)^n), the "
        "values sorted worst to best). A curve that has flattened by the trials run says more trials of these "
        "ranges will not help; widen them or change what is swept."
    )
