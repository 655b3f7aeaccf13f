"""A sweep's verdict with real tests: each setting against the best (paired, Welch's, one run against seeds,
two proportions; Holm's correction), which swept keys matter (ANOVA, a linear model) and the expected best of n
trials, each checked against scipy or the formula computed here (no training)."""

import itertools
import json
import math
import statistics
from statistics import NormalDist

import numpy as np
import pytest
from conftest import file_hashes, run_cli, tiny_cifar_overrides
from matplotlib.backends.backend_agg import FigureCanvasAgg
from omegaconf import OmegaConf
from scipy import stats
from test_report import make_run, make_sweep

from lit_cifar.reporting import plots
from lit_cifar.reporting.compare import PAIRED, PROPORTIONS, WELCH, Runs, compare_runs, holm, verdicts
from lit_cifar.reporting.effects import expected_best, key_effects, more_trials_line
from lit_cifar.reporting.settings import VERDICT
from lit_cifar.sweep.search import SWEEPER, trial_name


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
    found = key_effects(runs, values, seeds, ["optim.lr", "model.dropout"], set(), set())
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
    found = key_effects(runs, values, [42] * 9, ["optim.lr", "data.batch_size", "model"], {"optim.lr"}, {"optim.lr"})
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
    found = key_effects(runs, [0.1, 0.2, 0.3], [None] * 3, ["a", "b"], set(), set())
    assert [k.effect() for k in found.keys] == [
        "cannot be judged: no error to test against: too few runs (3), or they fit exactly"
    ] * 2
    exact = [{"a": a, "b": b} for a in "12" for b in "123"]
    fitted = key_effects(exact, [0.1, 0.2, 0.2, 0.3, 0.4, 0.4], [None] * 6, ["a", "b"], set(), set())
    assert {k.effect() for k in fitted.keys} == {
        "cannot be judged: no error to test against: too few runs (6), or they fit exactly"
    }
    alone = key_effects([{"a": "1", "b": "2"}] * 3, [0.1, 0.2, 0.3], [None] * 3, ["a", "b"], set(), set())
    assert alone.model == "no model: no key took two values in the finished runs"
    assert [k.effect() for k in alone.keys] == ["cannot be judged: one value (1)", "cannot be judged: one value (2)"]
    together = [{"a": v, "b": v} for v in "1212"]
    found = key_effects(together, [0.1, 0.2, 0.12, 0.22], [None] * 4, ["a", "b"], set(), set())
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


# The same through the table a user reads: sweep folders with known metrics, `python -m lit_cifar.report`.


def result(metrics: dict, images: int = 500, status: str = "ok", seed: int | None = None) -> dict:
    return {"status": status, "metrics": metrics, "images": {"val": images, "test": 846}} | (
        {"seed": seed} if seed is not None else {}
    )


def a_sweep(folder, runs: dict[str, tuple[list[str], dict]], *task: str, metric: str | None = None):
    """A sweep dir whose job folders hold `runs` (name: (overrides, record)); `metric`: its optimized_metric."""
    sweep = make_sweep(folder, *task)
    if metric:
        config = OmegaConf.load(sweep / "multirun.yaml")
        config.optimized_metric = metric
        OmegaConf.save(config, sweep / "multirun.yaml")
    for name, (overrides, record) in runs.items():
        make_run(sweep / name, overrides, record)
    return sweep


def section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the markdown table in `text`, each by its header's names."""
    lines = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]
    header, *rows = [[cell.strip() for cell in line.strip()[1:-1].split("|")] for line in lines]
    return [dict(zip(header, row, strict=True)) for row in rows]


def p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.2g}"


def report_of(sweep) -> str:
    done = run_cli("lit_cifar.report", str(sweep))
    assert done.returncode == 0, done.stderr
    return (sweep / "results.md").read_text()


def test_one_seed_each_the_two_proportion_test_and_holms_correction_in_the_vs_best_column(tmp_path):
    values = {"0.001": 0.362, "0.002": 0.382, "0.005": 0.300}
    runs = {f"optim.lr={lr}": ([f"optim.lr={lr}"], result({"val/acc_best": v})) for lr, v in values.items()}
    markdown = report_of(a_sweep(tmp_path / "s", runs, "optim.lr=1e-3,2e-3,5e-3"))
    raw = [
        2 * NormalDist().cdf(-abs(a - 0.382) / math.sqrt(pool * (1 - pool) * 2 / 500))
        for a, pool in ((0.362, (181 + 191) / 1000), (0.300, (150 + 191) / 1000))
    ]
    tied, worse = holm_by_hand(raw)
    assert tied > 0.05 > worse
    runs_table = table_rows(section(markdown, "Runs"))
    assert [(row["job"], row["vs best"]) for row in runs_table] == [
        ("optim.lr=0.002", "best"),
        ("optim.lr=0.001", f"tied (p {p(tied)})"),
        ("optim.lr=0.005", f"worse (p {p(worse)})"),
    ]
    assert (
        "`vs best`: each setting against the best, two-sided at the 5% level with Holm's correction across the 2 "
        "comparisons: two-proportion z-test on the evaluation images (it ignores the spread between seeds), "
        "n = 500 and 500 images (2 settings)." in markdown
    )
    ties = next(line for line in markdown.splitlines() if line.startswith("  not told apart from it"))
    assert ties.startswith("  not told apart from it at 5% (Holm-adjusted p): optim.lr=0.001 0.3620 [")
    assert ties.endswith(f"] (p {p(tied)})")


def test_paired_seeds_a_failed_seed_and_unpaired_seeds_in_one_table(tmp_path):
    """lr 0.002's seed 1 failed: it is paired with the best on seeds 0 and 2; lr 0.005 ran seeds 3 and 4 (a later
    confirmation's): Welch's t-test. Holm across both."""
    best = {0: 0.50, 1: 0.56, 2: 0.47}
    second = {0: 0.485, 2: 0.462}
    third = {3: 0.40, 4: 0.43}
    runs = {}
    for lr, values in (("0.001", best), ("0.002", second), ("0.005", third)):
        for seed, v in values.items():
            runs[f"optim.lr={lr},seed={seed}"] = ([f"optim.lr={lr}", f"seed={seed}"], result({"val/acc_best": v}))
    failed = {"status": "failed", "reason": "NaN loss", "metrics": {}}
    runs["optim.lr=0.002,seed=1"] = (["optim.lr=0.002", "seed=1"], failed)
    markdown = report_of(a_sweep(tmp_path / "s", runs, "optim.lr=1e-3,2e-3", "seed=0,1,2"))
    raw = [
        stats.ttest_rel([0.50, 0.47], [0.485, 0.462]).pvalue,
        stats.ttest_ind(list(best.values()), list(third.values()), equal_var=False).pvalue,
    ]
    adjusted = holm_by_hand(raw)
    by_setting = table_rows(section(markdown, "By setting"))
    verdicts_shown = [(row["optim.lr"], row["n"], row["vs best"]) for row in by_setting]
    assert verdicts_shown == [
        ("0.001", "3", "best"),
        ("0.002", "2", f"{'worse' if adjusted[0] < 0.05 else 'tied'} (p {p(adjusted[0])})"),
        ("0.005", "2", f"{'worse' if adjusted[1] < 0.05 else 'tied'} (p {p(adjusted[1])})"),
    ]
    assert "paired t-test on the per-seed differences, n = 2 seeds (1 setting)" in markdown
    assert "Welch's t-test, n = 3 and 2 seeds (1 setting)" in markdown


def test_a_loss_ranks_downward_and_is_tested_on_its_seeds(tmp_path):
    losses = {"0.001": [1.20, 1.31, 1.25], "0.002": [1.40, 1.52, 1.43]}
    runs = {
        f"optim.lr={lr},seed={seed}": (
            [f"optim.lr={lr}", f"seed={seed}"],
            result({"val/loss": loss, "val/acc_best": 0.4, "test/acc": 0.4}),
        )
        for lr, values in losses.items()
        for seed, loss in enumerate(values)
    }
    markdown = report_of(a_sweep(tmp_path / "s", runs, "optim.lr=1e-3,2e-3", "seed=0,1,2", metric="val/loss"))
    paired = stats.ttest_rel(losses["0.001"], losses["0.002"]).pvalue
    assert [(row["optim.lr"], row["vs best"]) for row in table_rows(section(markdown, "By setting"))] == [
        ("0.001", "best"),
        ("0.002", f"{'worse' if paired < 0.05 else 'tied'} (p {p(paired)})"),
    ]
    one = {f"optim.lr={lr}": ([f"optim.lr={lr}"], result({"val/loss": v[0]})) for lr, v in losses.items()}
    markdown = report_of(a_sweep(tmp_path / "one", one, "optim.lr=1e-3,2e-3", metric="val/loss"))
    assert [(row["job"], row["vs best"]) for row in table_rows(section(markdown, "Runs"))] == [
        ("optim.lr=0.001", "best"),
        ("optim.lr=0.002", "untested"),
    ]
    assert "`untested` (1): a single run each of a loss" in markdown


def test_which_keys_matter_and_the_expected_best_in_a_grids_report(tmp_path):
    runs, values, seeds = grid_2x2x3()
    folders = {}
    for run, value, seed in zip(runs, values, seeds, strict=True):
        lr, dropout = run["optim.lr"], run["model.dropout"]
        overrides = [f"model.dropout={dropout}", f"optim.lr={lr}", f"seed={seed}"]
        folders[",".join(overrides)] = (overrides, result({"val/acc_best": value}))
    sweep = a_sweep(tmp_path / "s", folders, "optim.lr=1e-4,3e-3", "model.dropout=0,0.000001", "seed=0,1,2")
    markdown = report_of(sweep)
    expected = key_effects(runs, values, seeds, ["optim.lr", "model.dropout"], set(), set())  # checked by hand above
    keys = section(markdown, "Which keys matter")
    assert keys.startswith("2-way ANOVA, optim.lr + model.dropout + seed (a block); Type II sums of squares")
    lr, dropout = expected.keys
    assert [list(row.values()) for row in table_rows(keys)] == [
        ["optim.lr", "0.0001", "6", f"{lr.levels[0].mean:.4f} ± {lr.levels[0].half_width:.4f}", lr.effect()],
        ["optim.lr", "0.003", "6", f"{lr.levels[1].mean:.4f} ± {lr.levels[1].half_width:.4f}", ""],
        ["model.dropout", "0", "6", f"{dropout.levels[0].mean:.4f} ± {dropout.levels[0].half_width:.4f}",
         dropout.effect()],
        ["model.dropout", "1e-06", "6", f"{dropout.levels[1].mean:.4f} ± {dropout.levels[1].half_width:.4f}", ""],
    ]  # fmt: skip
    assert lr.effect().startswith("matters") and dropout.effect().startswith("no effect found")
    more = section(markdown, "Would more trials help")
    assert more.startswith(
        f"expected best of 12 trials {expected_best(values, 12):.4f}; of 24: {expected_best(values, 24):.4f} "
        "(Dodge et al. 2019's expected maximum by the empirical-CDF estimator"
    )
    assert (sweep / "results.png").is_file()


def test_a_grid_key_of_many_values_is_a_factor_so_an_effect_that_rises_and_falls_is_found(tmp_path):
    """Six listed learning rates, best in the middle: as a factor, lr matters; a straight line through them (a
    search's sampled key) would be flat and find nothing."""
    lrs = ["1e-4", "3e-4", "1e-3", "3e-3", "1e-2", "3e-2"]
    peak = {"1e-4": 0.20, "3e-4": 0.30, "1e-3": 0.40, "3e-3": 0.40, "1e-2": 0.30, "3e-2": 0.20}
    bump = {"0": 0.0, "0.5": 0.004}
    noise = [0.003, -0.002, 0.001, -0.003, 0.002, -0.001, 0.0, 0.002, -0.002, 0.001, -0.001, 0.003]
    runs, values = [], []
    for (lr, dropout), e in zip(itertools.product(lrs, bump), noise, strict=True):
        runs.append({"optim.lr": lr, "model.dropout": dropout})
        values.append(peak[lr] + bump[dropout] + e)
    folders = {
        f"model.dropout={r['model.dropout']},optim.lr={r['optim.lr']}": (
            [f"model.dropout={r['model.dropout']}", f"optim.lr={r['optim.lr']}"],
            result({"val/acc_best": v}),
        )
        for r, v in zip(runs, values, strict=True)
    }
    sweep = a_sweep(tmp_path / "s", folders, f"optim.lr={','.join(lrs)}", "model.dropout=0,0.5")
    keys = section(report_of(sweep), "Which keys matter")
    assert keys.startswith("2-way ANOVA, optim.lr + model.dropout; Type II sums of squares")
    y, grand = np.array(values), statistics.fmean(values)
    column = [r["optim.lr"] for r in runs]
    between = sum(2 * (statistics.fmean(y[[c == v for c in column]]) - grand) ** 2 for v in lrs)
    dropout = [r["model.dropout"] for r in runs]
    between_dropout = sum(6 * (statistics.fmean(y[[c == v for c in dropout]]) - grand) ** 2 for v in bump)
    error = ((y - grand) ** 2).sum() - between - between_dropout
    f = (between / 5) / (error / 5)
    lr_row = table_rows(keys)[0]
    assert lr_row["effect"] == f"matters (F(5, 5) = {f:.2f}, p {p(stats.f.sf(f, 5, 5))})"


def test_a_searchs_trials_a_linear_model_and_a_key_with_one_value(tmp_path):
    lrs = [1.2e-4, 3e-4, 5e-4, 8e-4, 1.1e-3, 2e-3, 3.5e-3, 6e-3, 9e-3]
    batches = ["64", "128", "64", "128", "128", "64", "128", "64", "64"]
    values = [0.30, 0.33, 0.34, 0.38, 0.37, 0.40, 0.41, 0.39, 0.36]
    runs = {
        trial_name(n): ([f"optim.lr={lr}", f"data.batch_size={b}", "model.dropout=0.2"], result({"val/acc_best": v}))
        for n, (lr, b, v) in enumerate(zip(lrs, batches, values, strict=True))
    }
    task = ["optim.lr=tag(log, interval(1e-4, 1e-2))", "data.batch_size=choice(64,128)", "model.dropout=choice(0.2)"]
    sweep = a_sweep(tmp_path / "s", runs, *task)
    config = OmegaConf.load(sweep / "multirun.yaml")
    config.hydra.sweeper._target_ = SWEEPER
    OmegaConf.save(config, sweep / "multirun.yaml")
    markdown = report_of(sweep)
    keys = section(markdown, "Which keys matter")
    assert keys.startswith("linear model, log10(optim.lr) + data.batch_size; Type II sums of squares")
    cells = [list(row.values()) for row in table_rows(keys)]
    pairs = zip(lrs, batches, strict=True)
    trials = [{"optim.lr": str(lr), "data.batch_size": b, "model.dropout": "0.2"} for lr, b in pairs]
    keys = ["optim.lr", "data.batch_size", "model.dropout"]
    found = key_effects(trials, values, [None] * 9, keys, {"optim.lr"}, {"optim.lr"})
    assert [row[4] for row in cells if row[4]] == [k.effect() for k in found.keys]
    half = stats.sem(values) * stats.t.ppf(0.975, 8)
    one_value = f"{statistics.fmean(values):.4f} ± {half:.4f}"
    assert cells[-1] == ["model.dropout", "0.2", "9", one_value, "cannot be judged: one value (0.2)"]
    assert section(markdown, "Would more trials help").startswith(
        f"expected best of 9 trials {expected_best(values, 9):.4f}; of 18: {expected_best(values, 18):.4f}"
    )


def test_every_setting_its_own_colour_and_each_key_a_panel_below(tmp_path):
    rows = [
        {"job": f"trial-{n:03d}", "dir": f"s/trial-{n:03d}", "status": "ok", "val/acc_best": 0.3 + n / 100,
         "overrides": {"optim.lr": str(1e-4 * (n + 1))}, VERDICT: "best" if n == 24 else "worse (p 0.01)"}
        for n in range(25)
    ]  # fmt: skip
    curves = {row["job"]: [(1, 0.2), (2, row["val/acc_best"])] for row in rows}
    found = key_effects(
        [{"optim.lr": r["overrides"]["optim.lr"], "b": str(n % 2)} for n, r in enumerate(rows)],
        [r["val/acc_best"] for r in rows], [None] * 25, ["optim.lr", "b"], {"optim.lr"}, {"optim.lr"},
    )  # fmt: skip
    figure = plots.results_figure(
        ["optim.lr"], rows, curves, "t", "val/acc_best", set(), search=True, effects=found,
        trial_values=[r["val/acc_best"] for r in rows],
    )  # fmt: skip
    panel, lines, lr, b, more = figure.axes
    colours = [tuple(line.get_color()) for line in lines.lines]
    assert len(colours) == 25 == len(set(colours))
    assert lr.get_title().startswith("optim.lr: ") and b.get_title().startswith("b: ")
    assert more.get_title() == "expected best of n trials (Dodge et al. 2019)"
    assert panel.get_title().startswith("best (ringed) 0.5400: trial-024") and not panel.texts  # no label on the data


@pytest.mark.slow
def test_rerun_reaches_new_work_without_starting_the_finished_jobs_processes(tmp_path, cifar_root):
    sweep_dir = tmp_path / "sweep"
    parallel = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}"]
    common = [
        *tiny_cifar_overrides(cifar_root),
        "model=two_layer_fc",
        "model.hidden=8",
        "trainer.max_epochs=1",
        *parallel,
    ]
    first = run_cli("lit_cifar.train", "-m", *common, "optim.lr=1e-3,2e-3")
    assert first.returncode == 0, first.stderr[-3000:]
    finished = {name: file_hashes(sweep_dir / name) for name in ("optim.lr=0.001", "optim.lr=0.002")}
    wider = run_cli("lit_cifar.rerun", str(sweep_dir), "optim.lr=1e-3,2e-3,3e-3")
    assert wider.returncode == 0, wider.stderr[-3000:]
    log = wider.stdout + wider.stderr
    assert "2 of 3 jobs finished already: left as they are, not started" in log
    assert "Launching 1 jobs, 2 at a time" in log  # a process for the new job alone
    assert {name: file_hashes(sweep_dir / name) for name in finished} == finished
    assert json.loads((sweep_dir / "optim.lr=0.003" / "metrics.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_on_the_slice_lr_matters_dropout_does_not_and_the_dropouts_at_the_better_lr_are_tied(tmp_path, cifar_slice):
    """A real grid: two learning rates far apart, two dropouts that change nothing a net computes, 3 seeds each."""
    sweep_dir = tmp_path / "grid"
    done = run_cli(
        "lit_cifar.train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",  # a thread each: no spinning
        "model=week11_cnn", "trainer=cpu", "trainer.max_epochs=2", "optim.lr=1e-4,3e-3",
        "model.dropout=0,0.000001", "seed=0,1,2", f"data.root={cifar_slice}", "data.verify_checksums=false",
        "data.download=false", "data.val_size=500", "data.num_workers=0", "callbacks.progress_bar=null",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (sweep_dir / "results.md").read_text()
    effects = {row["key"]: row["effect"] for row in table_rows(section(markdown, "Which keys matter")) if row["effect"]}
    assert effects["optim.lr"].startswith("matters (F(1, ")
    assert effects["model.dropout"].startswith("no effect found (F(1, ")
    by_setting = table_rows(section(markdown, "By setting"))
    better = [row["vs best"].split(" ")[0] for row in by_setting if row["optim.lr"] == "0.003"]
    assert sorted(better) == ["best", "tied"]
    assert all(row["vs best"].startswith("worse") for row in by_setting if row["optim.lr"] == "0.0001")


def test_a_report_across_folders_shows_the_value_each_run_used_never_a_blank_or_default(tmp_path):
    values = (("0.001", 0.4), ("0.002", 0.5))
    jobs = {f"optim.lr={lr}": ([f"optim.lr={lr}"], result({"val/acc_best": v})) for lr, v in values}
    sweep = a_sweep(tmp_path / "sweep", jobs, "optim.lr=1e-3,2e-3")
    run = make_run(tmp_path / "outputs" / "run", ["model=resnet_lite"], result({"val/acc_best": 0.45}))
    OmegaConf.save({"seed": 0, "trainer": {"max_epochs": 3}, "optim": {"lr": 0.0005}}, run / ".hydra" / "resolved.yaml")
    OmegaConf.save({"hydra": {"runtime": {"choices": {"model": "resnet_lite"}}}}, run / ".hydra" / "hydra.yaml")
    for job in sweep.glob("optim.lr=*"):  # the sweep's jobs ran the default model
        OmegaConf.save({"hydra": {"runtime": {"choices": {"model": "week11_cnn"}}}}, job / ".hydra" / "hydra.yaml")
    done = run_cli("lit_cifar.report", str(run), str(sweep), "--out", str(tmp_path / "both"))
    assert done.returncode == 0, done.stderr
    markdown = (tmp_path / "both" / "results.md").read_text()
    runs = table_rows(section(markdown, "Runs"))
    assert sorted((row["optim.lr"], row["model"]) for row in runs) == [
        ("0.0005", "resnet_lite"),
        ("0.001", "week11_cnn"),
        ("0.002", "week11_cnn"),
    ]
    assert "(default)" not in markdown


def test_a_setting_that_failed_on_some_seeds_is_never_declared_best(tmp_path):
    """lr 0.002 diverged on seeds 1 and 2; its one finished seed is the highest value in the sweep. A setting that
    fails is no winner: lr 0.001, which finished every seed, is best, and 0.002 says how often it failed."""
    runs = {f"optim.lr=0.001,seed={s}": (["optim.lr=0.001", f"seed={s}"], result({"val/acc_best": v}))
            for s, v in enumerate((0.50, 0.52, 0.49))}  # fmt: skip
    runs["optim.lr=0.002,seed=0"] = (["optim.lr=0.002", "seed=0"], result({"val/acc_best": 0.60}))
    for seed in (1, 2):
        failed = {"status": "failed", "reason": "NaN loss", "metrics": {}}
        runs[f"optim.lr=0.002,seed={seed}"] = (["optim.lr=0.002", f"seed={seed}"], failed)
    markdown = report_of(a_sweep(tmp_path / "s", runs, "optim.lr=1e-3,2e-3", "seed=0,1,2"))
    by_setting = table_rows(section(markdown, "By setting"))
    assert [(row["optim.lr"], row["vs best"]) for row in by_setting] == [
        ("0.001", "best"),
        ("0.002", "failed on 2 of 3 seeds"),
    ]
    assert "best: optim.lr=0.001," in markdown
    unranked = next(line for line in markdown.splitlines() if line.startswith("  not ranked"))
    assert unranked.startswith("  not ranked (a setting that failed on a seed): optim.lr=0.002 0.6000 [")
    assert unranked.endswith("] (failed on 2 of 3 seeds)")
    # When every setting failed somewhere, the one that failed least is ranked; ties in failures by the metric.
    runs["optim.lr=0.001,seed=2"] = (["optim.lr=0.001", "seed=2"], {"status": "failed", "reason": "x", "metrics": {}})
    markdown = report_of(a_sweep(tmp_path / "t", runs, "optim.lr=1e-3,2e-3", "seed=0,1,2"))
    assert [(row["optim.lr"], row["vs best"]) for row in table_rows(section(markdown, "By setting"))] == [
        ("0.001", "best"),
        ("0.002", "failed on 2 of 3 seeds"),
    ]


def test_a_grid_of_ten_values_on_a_log_axis_has_tick_labels_that_never_overlap():
    """1e-3 to 1e-2 in steps of 1e-3: the upper values of the decade sit close on a log axis."""
    lrs = [f"{n}e-3" for n in range(1, 11)]
    rows = [
        {"job": f"optim.lr={lr}", "dir": f"s/{lr}", "status": "ok", "val/acc_best": 0.4, "overrides": {"optim.lr": lr},
         VERDICT: "best" if n == 0 else "tied (p 0.5)"}
        for n, lr in enumerate(lrs)
    ]  # fmt: skip
    curves = {row["job"]: [(1, 0.4)] for row in rows}
    figure = plots.results_figure(["optim.lr"], rows, curves, "t", "val/acc_best", {"optim.lr"})
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    labels = [label for label in figure.axes[0].get_xticklabels() if label.get_text()]
    assert [label.get_text() for label in labels] == [f"{n / 1000:g}" for n in range(1, 11)]
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
