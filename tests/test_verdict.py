"""A sweep's verdict with real tests: each setting against the best (paired, Welch's, one run against seeds,
two proportions; Holm's correction), which swept keys matter (ANOVA, a linear model) and the expected best of n
trials, each checked against scipy or the formula computed here (no training)."""

import itertools
import math
import statistics
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from lit_cifar.reporting.compare import PAIRED, PROPORTIONS, WELCH, Runs, compare_runs, holm, verdicts
from lit_cifar.reporting.effects import expected_best, key_effects, more_trials_line


def holm_by_hand(p_values: list[float]) -> list[float]:
    """Holm's step-down: the k-th smallest p times (m - k + 1), never below the one before, at most 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def test_settings_that_ran_the_same_seeds_are_compared_by_their_per_seed_differences():
    best, other = [0.50, 0.56, 0.47], [0.48, 0.545, 0.46]  # 1.5 points apart at every seed, seeds 6 points apart
    found = compare_runs(Runs(best, [0, 1, 2]), Runs(other, [0, 1, 2]), accuracy=True)
    diffs = [a - b for a, b in zip(best, other, strict=True)]
    t = statistics.fmean(diffs) / (statistics.stdev(diffs) / math.sqrt(3))
    assert (found.name, found.n) == (PAIRED, "3 seeds")
    assert found.p == pytest.approx(2 * stats.t.sf(abs(t), 2))
    # Unpaired, the seeds' spread swamps the same gap: Welch's t-test sees nothing.
    unpaired = compare_runs(Runs(best, [0, 1, 2]), Runs(other, [3, 4, 5]), accuracy=True)
    assert (unpaired.name, unpaired.n) == (WELCH, "3 and 3 seeds")
    assert unpaired.p == pytest.approx(stats.ttest_ind(best, other, equal_var=False).pvalue)
    assert found.p < 0.05 < unpaired.p


def test_only_the_seeds_both_ran_are_paired_a_failed_seed_left_out():
    """After a confirmation the best has seeds 0-4, the other 0-2, and its seed 1 failed (not passed in)."""
    found = compare_runs(Runs([0.5, 0.52, 0.49, 0.51, 0.5], [0, 1, 2, 3, 4]), Runs([0.45, 0.46], [0, 2]), accuracy=True)
    assert (found.name, found.n) == (PAIRED, "2 seeds")
    assert found.p == pytest.approx(stats.ttest_rel([0.5, 0.49], [0.45, 0.46]).pvalue)
    one_shared = compare_runs(Runs([0.5, 0.52], [0, 1]), Runs([0.45, 0.44], [0, 2]), accuracy=True)
    assert one_shared.name == WELCH  # one shared seed pairs nothing


def test_one_run_each_is_the_two_proportion_test_on_the_images():
    found = compare_runs(Runs([0.382], [0], images=500), Runs([0.362], [0], images=500), accuracy=True)
    pooled = (191 + 181) / 1000
    z = (0.382 - 0.362) / math.sqrt(pooled * (1 - pooled) * (2 / 500))
    assert (found.name, found.n) == (PROPORTIONS, "500 and 500 images")
    assert found.p == pytest.approx(2 * NormalDist().cdf(-z))
    assert "ignores the spread between seeds" in PROPORTIONS
    assert compare_runs(Runs([1.2], [0]), Runs([1.5], [0]), accuracy=False) is None  # one loss each: nothing to test
    assert compare_runs(Runs([0.4], [0]), Runs([0.3], [0]), accuracy=True) is None  # no image count recorded


def test_one_run_against_seeds_is_judged_by_their_spread():
    seeds = [0.50, 0.54, 0.58]
    found = compare_runs(Runs(seeds, [0, 1, 2]), Runs([0.40], [7]), accuracy=True)
    t = (statistics.fmean(seeds) - 0.40) / (statistics.stdev(seeds) * math.sqrt(1 + 1 / 3))  # a new value's spread
    assert found.n == "3 and 1 seeds" and found.p == pytest.approx(2 * stats.t.sf(t, 2))


def test_holm_across_one_tables_comparisons_and_the_verdict_words():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx(holm_by_hand([0.01, 0.04, 0.03]))  # 0.03, 0.06, 0.06
    best = Runs([0.60, 0.62, 0.61], [0, 1, 2])
    others = [Runs([0.59, 0.60, 0.605], [0, 1, 2]), Runs([0.50, 0.52, 0.505], [0, 1, 2]), Runs([0.3], [0])]
    raw = [stats.ttest_rel(best.values, o.values).pvalue for o in others[:2]]
    raw.append(stats.ttest_ind(best.values, others[2].values).pvalue)
    adjusted = holm_by_hand(raw)
    found = verdicts([best, *others], accuracy=True)
    assert [v.word for v in found] == ["best", *("worse" if p < 0.05 else "tied" for p in adjusted)]
    assert [v.p for v in found[1:]] == pytest.approx(adjusted)
    assert str(found[0]) == "best" and str(found[1]) == f"tied (p {adjusted[0]:.2g})"
    assert [str(v) for v in verdicts([Runs([1.2], [0]), Runs([1.5], [0])], accuracy=False)] == ["best", "untested"]


def grid_2x2x3() -> tuple[list[dict], list[float], list[int]]:
    """lr matters (4 points), dropout does not, the seeds shift every setting alike; a little noise on top."""
    noise = iter([0.004, -0.003, 0.001, -0.002, 0.003, 0.000, 0.002, -0.004, 0.001, -0.001, 0.002, -0.003])
    runs, values, seeds = [], [], []
    for lr, dropout, seed in itertools.product(("0.0001", "0.003"), ("0", "1e-06"), (0, 1, 2)):
        runs.append({"optim.lr": lr, "model.dropout": dropout})
        values.append(0.30 + 0.04 * (lr == "0.003") + 0.01 * seed + next(noise))
        seeds.append(seed)
    return runs, values, seeds


def test_which_keys_matter_in_a_full_grid_an_anova_with_the_seed_as_a_block():
    runs, values, seeds = grid_2x2x3()
    found = key_effects(runs, values, seeds, ["optim.lr", "model.dropout"], set())
    assert found.model.startswith("2-way ANOVA, optim.lr + model.dropout + seed (a block); Type II")
    # A balanced design: the sums of squares by hand, each factor's means about the grand mean.
    y, grand = np.array(values), statistics.fmean(values)

    def squares(column: list) -> float:
        return sum(column.count(v) * (statistics.fmean(y[[c == v for c in column]]) - grand) ** 2 for v in set(column))

    lr, dropout = [r["optim.lr"] for r in runs], [r["model.dropout"] for r in runs]
    error = ((y - grand) ** 2).sum() - squares(lr) - squares(dropout) - squares(seeds)
    df_error = 12 - 1 - 1 - 1 - 2
    for effect, column in zip(found.keys, (lr, dropout), strict=True):
        f = squares(column) / (error / df_error)
        assert (effect.df, effect.f, effect.p) == ((1, df_error), pytest.approx(f), pytest.approx(stats.f.sf(f, 1, 7)))
    assert found.keys[0].effect().startswith("matters (F(1, 7) = ")
    assert found.keys[1].effect().startswith("no effect found (F(1, 7) = ")
    # Each value's mean over everything else, with Student's t 95% interval over its 6 runs.
    low = [v for v, r in zip(values, runs, strict=True) if r["optim.lr"] == "0.0001"]
    interval = stats.t.interval(0.95, 5, loc=statistics.fmean(low), scale=stats.sem(low))
    level = found.keys[0].levels[0]
    assert (level.value, level.n, level.mean) == ("0.0001", 6, pytest.approx(statistics.fmean(low)))
    assert level.half_width == pytest.approx((interval[1] - interval[0]) / 2)


def test_a_searchs_trials_a_linear_model_a_sampled_key_on_its_log_and_a_key_with_one_value():
    lrs = [1.2e-4, 3e-4, 5e-4, 8e-4, 1.1e-3, 2e-3, 3.5e-3, 6e-3, 9e-3]
    batches = ["64", "128", "64", "128", "128", "64", "128", "64", "64"]
    values = [0.30, 0.33, 0.34, 0.38, 0.37, 0.40, 0.41, 0.39, 0.36]
    runs = [
        {"optim.lr": str(lr), "data.batch_size": b, "model": "week11_cnn"} for lr, b in zip(lrs, batches, strict=True)
    ]
    found = key_effects(runs, values, [42] * 9, ["optim.lr", "data.batch_size", "model"], {"optim.lr"})
    assert found.model.startswith("linear model, log10(optim.lr) + data.batch_size; Type II")
    # Each key's F: the residual sums of squares of the model without it against the whole model's.
    x = np.log10(lrs)
    b = np.array([v == "128" for v in batches], dtype=float)

    def rss(*columns) -> float:
        design = np.column_stack([np.ones(9), *columns])
        return float(((np.array(values) - design @ np.linalg.lstsq(design, values, rcond=None)[0]) ** 2).sum())

    whole = rss(x, b)
    for effect, without in zip(found.keys, (rss(b), rss(x)), strict=False):
        f = (without - whole) / (whole / 6)
        assert (effect.df, effect.f, effect.p) == ((1, 6), pytest.approx(f), pytest.approx(stats.f.sf(f, 1, 6)))
    assert [level.value for level in found.keys[0].levels] == ["0.00012–0.0005", "0.0008–0.002", "0.0035–0.009"]
    assert found.keys[2].effect() == "cannot be judged: one value (week11_cnn)"


def test_a_key_cannot_be_judged_with_too_few_runs_or_values_that_change_together():
    runs = [{"a": "1", "b": "1"}, {"a": "2", "b": "1"}, {"a": "1", "b": "2"}]
    found = key_effects(runs, [0.1, 0.2, 0.3], [None] * 3, ["a", "b"], set())
    assert [k.effect() for k in found.keys] == [
        "cannot be judged: too few runs (3) to test every key and leave an error"
    ] * 2
    together = [{"a": v, "b": v} for v in "1212"]
    found = key_effects(together, [0.1, 0.2, 0.12, 0.22], [None] * 4, ["a", "b"], set())
    assert {k.effect() for k in found.keys} == {
        "cannot be judged: its values change together with another key's or the seed's"
    }


def test_the_expected_best_of_n_trials_is_the_mean_best_of_every_draw_of_n():
    values = [0.41, 0.38, 0.43, 0.35, 0.40]
    for n in (1, 2, 3):
        draws = list(itertools.product(values, repeat=n))  # every draw of n trials with replacement, equally likely
        assert expected_best(values, n) == pytest.approx(statistics.fmean(max(d) for d in draws))
        assert expected_best(values, n, higher=False) == pytest.approx(statistics.fmean(min(d) for d in draws))
    assert expected_best(values, 1) == pytest.approx(statistics.fmean(values))
    assert more_trials_line(values) == (
        f"expected best of 5 trials {expected_best(values, 5):.4f}; of 10: {expected_best(values, 10):.4f}"
    )
