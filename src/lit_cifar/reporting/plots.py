"""A sweep's figures: `results.png` (the ranking metric of each setting against each compared key, or a heatmap of
a full two-key grid, beside each setting's validation curve; under them, how much each swept key matters and the
expected best of n trials) and a search's `search_history.png`. Matplotlib is imported here only.

A setting keeps one colour in every panel, and no two settings share one. Its verdict against the best shows in
its mark, whatever the colour: ringed the best, filled `tied`, hollow `worse` or `untested`."""

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.ticker import MaxNLocator, NullFormatter

from lit_cifar.reporting.compare import BEST, TIED
from lit_cifar.reporting.effects import RATE_KEYS, Effects, KeyEffect, expected_best
from lit_cifar.reporting.rows import Curve, row_value
from lit_cifar.reporting.settings import INTERVAL, VERDICT
from lit_cifar.run.metrics import higher_is_better
from lit_cifar.sweep.search import trial_number

HALO = [withStroke(linewidth=5, foreground="white")]  # a mark drawn over a white halo shows on any colour
PANEL_WIDTH, LEGEND_WIDTH, ROW_HEIGHT = 5.5, 3.5, 4.8
NAMED = 10  # settings the curves' legend names, best first: a hundred names would not fit, nor be read
FULL_CELLS = 16  # a heatmap of more cells writes only each cell's value and n (the interval and verdict: results.md)
CELLS_PER_PANEL = 6  # a heatmap of more columns gets a wider panel


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def _axis_values(values: list[str]) -> tuple[list[float], list[str] | None]:
    """Numbers as numbers; anything else as positions 0, 1, … with its sorted values as tick labels."""
    numbers = _numbers(values)
    if numbers is not None:
        return numbers, None
    labels = sorted(set(values))
    return [float(labels.index(v)) for v in values], labels


def _is_rate(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in RATE_KEYS


def _word(row: dict) -> str:
    """The verdict's word (`best`, `tied`, `worse`, `untested`) without its p-value."""
    return str(row.get(VERDICT) or "").split(" ", 1)[0]


def _interval_text(row: dict, metric: str) -> str:
    """A row's 95% interval as the tables write it: `± 0.0174` about a mean of seeds, `[0.3392, 0.4267]` for a
    single run's exact binomial one, empty without one."""
    interval, value = row.get(INTERVAL), row[metric]
    if interval is None:
        return ""
    if abs((interval.high - value) - (value - interval.low)) < 1e-9:
        return f"± {interval.high - value:.4f}"
    return f"[{interval.low:.4f}, {interval.high:.4f}]"


def _errors(rows: list[dict], metric: str) -> list[list[float]]:
    """matplotlib's yerr of rows' 95% intervals: the distance below each value, and above (0 without one)."""
    intervals = [(r.get(INTERVAL), r[metric]) for r in rows]
    return [
        [value - i.low if i else 0.0 for i, value in intervals],
        [i.high - value if i else 0.0 for i, value in intervals],
    ]


def setting_colours(labels: list[str]) -> dict[str, tuple]:
    """A colour for each setting, none used twice: tab10's for the first `NAMED` (the best, which the legend names),
    the rest evenly spaced along turbo."""
    rest = [tuple(c) for c in colormaps["turbo"](np.linspace(0.03, 0.97, max(0, len(labels) - NAMED)))]
    return dict(zip(labels, [*colormaps["tab10"].colors[: min(NAMED, len(labels))], *rest], strict=True))


def _heatmap(ax, keys: list[str], done: list[dict], best: dict, metric: str) -> None:
    """`metric` of a two-key grid: one cell per pair of values with its 95% interval, n and verdict, the best
    outlined in red and those tied with it dashed (each outline over a white halo)."""
    from matplotlib.patches import Rectangle

    x_key, y_key = keys
    x_values = sorted({str(row_value(r, x_key)) for r in done}, key=lambda v: (_numbers([v]) or [0.0], v))
    y_values = sorted({str(row_value(r, y_key)) for r in done}, key=lambda v: (_numbers([v]) or [0.0], v))
    grid = np.full((len(y_values), len(x_values)), np.nan)
    cells = {}
    for r in done:
        cell = y_values.index(str(row_value(r, y_key))), x_values.index(str(row_value(r, x_key)))
        grid[cell], cells[cell] = r[metric], r
        if _word(r) == TIED:
            box = Rectangle((cell[1] - 0.5, cell[0] - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2, ls="--")
            ax.add_patch(box).set_path_effects(HALO)
    shown = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    ax.figure.colorbar(shown, ax=ax, label=metric)
    ax.set_xticks(range(len(x_values)), x_values)
    ax.set_yticks(range(len(y_values)), y_values)
    full = grid.size <= FULL_CELLS
    what = f"{metric} ± 95%, n runs" if full else f"{metric}, n runs (intervals and p: results.md)"
    ax.set(xlabel=x_key, ylabel=y_key, title=f"{what} (red: best; dashed: tied)")
    for (row, col), value in np.ndenumerate(grid):
        if not np.isnan(value):
            r = cells[row, col]
            red, green, blue, _ = shown.cmap(shown.norm(value))
            colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
            interval = _interval_text(r, metric) if full else ""
            text = f"{value:.4f}" + (f"\n{interval}" if interval else "") + f"\nn={r.get('n', 1)}"
            text += f"\n{r[VERDICT]}" if r.get(VERDICT) and full else ""
            ax.text(col, row, text, ha="center", va="center", color=colour, fontsize=8 if full else 6.5)
    col, row = x_values.index(str(row_value(best, x_key))), y_values.index(str(row_value(best, y_key)))
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)).set_path_effects(
        HALO
    )


def _full_grid(keys: list[str], done: list[dict]) -> bool:
    """Two keys with two values or more each, and a finished job for every pair of them."""
    if len(keys) != 2:
        return False
    pairs = {(str(row_value(r, keys[0])), str(row_value(r, keys[1]))) for r in done}
    firsts, seconds = {a for a, _ in pairs}, {b for _, b in pairs}
    return len(firsts) > 1 and len(seconds) > 1 and len(pairs) == len(firsts) * len(seconds)


def _best_title(best: dict, metric: str, shown: list[dict]) -> str:
    """The best setting's value and name, and how many are tied with it: a title, never over the data."""
    ties = sum(_word(r) == TIED for r in shown)
    value = f"{best[metric]:.4f} {_interval_text(best, metric)}".strip()
    return f"best (ringed) {value}: {best['job']}\n{ties} tied with it (filled); hollow: worse"


def _panel(
    ax, key: str, shown: list[dict], best: dict, metric: str, log_keys: set[str], search: bool, colours: dict,
    first: bool,
) -> None:  # fmt: skip
    """`metric` of each setting against one key, on a log axis for a rate or a key searched on one; settings that
    share a value side by side, each in its colour with its 95% interval; filled when tied with the best, hollow
    when worse; pruned trials as grey crosses (their metric when stopped); the best ringed, and named in the
    `first` panel's title."""
    xs, labels = _axis_values([str(row_value(r, key)) for r in shown])
    log = labels is None and (key in log_keys or _is_rate(key)) and min(xs) > 0
    span = (max(xs) - min(xs)) or 1.0
    at = []
    for i, (x, r) in enumerate(zip(xs, shown, strict=True)):  # side by side, not on top of each other
        same = [j for j, other in enumerate(xs) if other == x and shown[j]["status"] == r["status"]]
        shift = same.index(i) - (len(same) - 1) / 2 if len(same) <= 8 else 0.0
        at.append(x * 1.04**shift if log else x + 0.015 * span * shift)
    done = [i for i, r in enumerate(shown) if r["status"] == "ok"]
    pruned = [i for i, r in enumerate(shown) if r["status"] == "pruned"]
    edge = [colours[shown[i]["job"]] for i in done]
    face = [c if _word(shown[i]) in (BEST, TIED) else "white" for i, c in zip(done, edge, strict=True)]
    ax.scatter([at[i] for i in done], [shown[i][metric] for i in done], s=40, c=face, edgecolors=edge, zorder=3)
    ax.scatter([at[i] for i in pruned], [shown[i][metric] for i in pruned], marker="x", color="grey", zorder=3)
    for i in done:  # each setting's 95% interval
        if shown[i].get(INTERVAL):
            colour = colours[shown[i]["job"]]
            yerr = _errors([shown[i]], metric)
            ax.errorbar(at[i], shown[i][metric], yerr=yerr, fmt="none", ecolor=colour, capsize=3, alpha=0.7, zorder=2)
    ax.scatter([at[shown.index(best)]], [best[metric]], s=220, facecolors="none", edgecolors="red", linewidths=2)
    ax.set_title(_best_title(best, metric, shown) if first else f"{metric} by {key}", fontsize="small")
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # matplotlib labels minor ticks under a decade: they overlap
    elif labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0)
    if labels is None and not search:  # a grid's values as its ticks; a search's sampled ones would overlap
        ticks = sorted(set(xs))
        crowded = len(ticks) > 5  # on a log axis the upper values of a decade sit close: upright, they never overlap
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks], rotation=90 if crowded else 0)
        ax.minorticks_off()
    ax.set(xlabel=key + (" (log)" if log else ""), ylabel=metric)
    ax.grid(alpha=0.3)
    if pruned:
        ax.legend(ax.collections[1:2], ["pruned"], fontsize="x-small")


def _effect_panel(ax, effect: KeyEffect, metric: str) -> None:
    """Each value of a key against the mean of the runs that used it, with its 95% interval and n; the title
    says whether the key matters."""
    positions = range(len(effect.levels))
    means = [level.mean for level in effect.levels]
    errors = [level.half_width or 0.0 for level in effect.levels]
    ax.errorbar(positions, means, yerr=errors, fmt="o-", color="black", capsize=4)
    crowded = len(effect.levels) > 5
    ax.set_xticks(positions, [f"{level.value}\nn={level.n}" for level in effect.levels], rotation=90 if crowded else 0)
    ax.set_xlim(-0.5, len(effect.levels) - 0.5)
    ax.set(xlabel=effect.key, ylabel=f"mean {metric} ± 95%", title=f"{effect.key}: {effect.effect()}")
    ax.title.set_fontsize("small")
    ax.grid(alpha=0.3)


def _more_trials_panel(ax, values: list[float], metric: str) -> None:
    """The expected best of n trials against n, to twice the trials run (Dodge et al. 2019)."""
    higher, size = higher_is_better(metric), len(values)
    counts = range(1, 2 * size + 1)
    ax.plot(counts, [expected_best(values, n, higher) for n in counts], color="black")
    ax.axvline(size, color="grey", ls="--", label=f"{size} trials run")
    ax.set(xlabel="trials", ylabel=f"expected best {metric}", title="expected best of n trials (Dodge et al. 2019)")
    ax.title.set_fontsize("small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")


def _members(row: dict) -> set[str]:
    """The names of a row's runs, under which their curves are kept: a setting's, or the run's own."""
    return row.get("members") or {row["job"], row["dir"]}


def _curves_panel(ax, shown: list[dict], curves: dict[str, Curve], best: dict | None, colours: dict) -> None:
    """One line per setting: the mean validation accuracy of its runs by epoch, a band from their lowest to their
    highest; the best thick; curves of runs in no setting shown (unfinished) thin and grey; the legend outside, naming
    the best `NAMED` settings (the others thin)."""
    drawn, unnamed = set(), 0
    for r in shown:
        names = [name for name in _members(r) if curves.get(name)]
        drawn.update(_members(r))
        if not names:
            continue
        epochs = sorted({epoch for name in names for epoch, _ in curves[name]})
        by_epoch = [[v for name in names for e, v in curves[name] if e == epoch] for epoch in epochs]
        thick = best is not None and r is best
        named = len(ax.lines) < NAMED  # settings come best first
        width, order = (2.5, 3) if thick else (1.2, 2) if named else (0.6, 1)
        label = r["job"] + (f" (n={len(names)})" if len(names) > 1 else "") if named else "_unnamed"
        unnamed += not named
        colour = colours.get(r["job"], "grey")
        ax.plot(epochs, [np.mean(v) for v in by_epoch], marker=".", label=label, color=colour, lw=width, zorder=order)
        if len(names) > 1:
            ax.fill_between(epochs, [min(v) for v in by_epoch], [max(v) for v in by_epoch], color=colour, alpha=0.15)
    others = [name for name, curve in curves.items() if curve and name not in drawn]
    for n, name in enumerate(others):
        ax.plot(*zip(*curves[name], strict=True), color="grey", lw=0.8, ls=":", label=None if n else "unfinished")
    epochs = {epoch for curve in curves.values() for epoch, _ in curve}
    if epochs and max(epochs) <= 10:  # each epoch a tick (MaxNLocator draws 0.96, 0.98, … around a single one)
        ax.set_xticks(range(1, max(epochs) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="val/acc", title="validation accuracy by epoch (band: lowest to highest seed)")
    ax.title.set_fontsize("small")
    ax.grid(alpha=0.3)
    if ax.lines:
        handles, labels = ax.get_legend_handles_labels()
        if unnamed:
            handles.append(Line2D([], [], color="grey", lw=0.6))
            labels.append(f"and {unnamed} more settings (results.md)")
        ax.legend(handles, labels, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


def results_figure(
    keys: list[str],
    rows: list[dict],
    curves: dict[str, Curve],
    title: str,
    metric: str,
    log_keys: set[str] = frozenset(),
    search: bool = False,
    effects: Effects | None = None,
    trial_values: list[float] = (),
) -> Figure:
    """The top row: a full two-key grid as a heatmap of the ranking `metric`, otherwise that metric of each setting
    against each compared key, pruned trials included; then each setting's validation curve. The row below, when
    there is something to show: one panel per swept key of `effects` (two keys or more) and the expected best of
    n trials from `trial_values` (three or more)."""
    done = [r for r in rows if r["status"] == "ok" and r[metric] is not None]
    shown = [r for r in rows if r["status"] in ("ok", "pruned") and r[metric] is not None]
    best = next((r for r in done if _word(r) == BEST), None)  # the table's best (lowest for a loss)
    heatmap = best is not None and len(shown) == len(done) and _full_grid(keys, done)
    top = 1 if heatmap else len(keys) if best is not None else 0
    key_panels = effects.keys if effects is not None and len(effects.keys) > 1 else []
    bottom = len(key_panels) + (len(trial_values) >= 3)
    columns = len({str(row_value(r, keys[0])) for r in done}) if heatmap else 0
    widths = [max(1.0, columns / CELLS_PER_PANEL)] * top + [1.0]  # a heatmap's cells wide enough for their text
    width = PANEL_WIDTH * max(sum(widths), bottom) + LEGEND_WIDTH
    fig = Figure(figsize=(width, ROW_HEIGHT * (1 + (bottom > 0))), layout="constrained")
    grid = fig.add_gridspec(1 + (bottom > 0), 1)
    axes = [fig.add_subplot(spec) for spec in grid[0].subgridspec(1, top + 1, width_ratios=widths)]
    colours = setting_colours([r["job"] for r in shown])
    if heatmap:
        _heatmap(axes[0], keys, done, best, metric)
    elif best is not None:
        for n, (ax, key) in enumerate(zip(axes, keys, strict=False)):
            _panel(ax, key, shown, best, metric, log_keys, search, colours, first=n == 0)
    _curves_panel(axes[-1], shown, curves, best, colours)
    if bottom:
        below = [fig.add_subplot(spec) for spec in grid[1].subgridspec(1, bottom)]
        for ax, effect in zip(below, key_panels, strict=False):
            _effect_panel(ax, effect, metric)
        if len(trial_values) >= 3:
            _more_trials_panel(below[-1], list(trial_values), metric)
    fig.suptitle(title)
    return fig


def plot(path: Path, *args, **kwargs) -> None:
    """results.png: see `results_figure`."""
    results_figure(*args, **kwargs).savefig(path, dpi=110)


def plot_history(rows: list[dict], curves: dict[str, list], path: Path, title: str, metric: str) -> None:
    """The search's history, from its results table (`rows`) and validation curves: each trial's `metric`
    (val/acc_best; test/acc without a validation split) by state and the best of the completed ones so far,
    against the trial number and against the epochs trained so far (what the pruner saves shows on the right)."""
    trials = sorted((trial_number(row["job"]), row) for row in rows if trial_number(row["job"]) is not None)
    fig = Figure(figsize=(11, 4), layout="constrained")
    by_trial, by_epochs = fig.subplots(1, 2, sharey=True)
    spent, best, steps = 0, None, []
    for number, row in trials:
        spent += len(curves.get(row["dir"], []))
        value = row[metric]
        if row["status"] == "ok" and isinstance(value, int | float):
            best = value if best is None else (max if higher_is_better(metric) else min)(best, value)
        steps.append((number, spent, best))
    styles = {"ok": ("o", "tab:blue", "complete"), "pruned": ("x", "tab:orange", "pruned")}
    for status, (marker, colour, label) in styles.items():
        points = [(n, r[metric]) for n, r in trials if r["status"] == status and r[metric] is not None]
        if points:
            by_trial.scatter(*zip(*points, strict=True), marker=marker, color=colour, label=label, zorder=3)
    reached = [(n, s, b) for n, s, b in steps if b is not None]
    if reached:
        numbers, epochs, bests = zip(*reached, strict=True)
        by_trial.step(numbers, bests, where="post", color="black", label="best so far")
        by_epochs.step(epochs, bests, where="post", color="black")
        by_epochs.plot(epochs, bests, "o", color="black", markersize=3)
    by_trial.set(xlabel="trial", ylabel=metric, title="each trial")
    by_epochs.set(xlabel="epochs trained, all trials together", title="best so far against the work done")
    for axes in (by_trial, by_epochs):
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
    by_trial.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize="small")  # off the data
    fig.suptitle(title, fontsize="medium")
    fig.savefig(path, dpi=110)
