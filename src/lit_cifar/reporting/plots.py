"""A sweep's figures: `results.png` (the ranking metric against each compared key, or a heatmap of a full
two-key grid, beside every validation curve) and a search's `search_history.png`. Matplotlib is imported here
only."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from lit_cifar.reporting.rows import Curve, row_value
from lit_cifar.reporting.settings import BEST, HALF_WIDTH, TIED, VERDICT
from lit_cifar.run.metrics import higher_is_better
from lit_cifar.sweep.search import trial_number

RATE_KEYS = ("lr", "weight_decay", "eta_min", "max_lr")  # keys compared on a log axis, as keys searched on one
MAX_GROUPS = 6  # more combinations of the other keys than this (a search's sampled values): one colour


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


def _heatmap(ax, keys: list[str], done: list[dict], best: dict, metric: str) -> None:
    """`metric` of a two-key grid: one cell per pair of values with its 95% interval, the best one outlined in red,
    those that cannot be told apart from it dashed."""
    from matplotlib.patches import Rectangle

    x_key, y_key = keys
    x_values = sorted({str(row_value(r, x_key)) for r in done}, key=lambda v: (_numbers([v]) or [0.0], v))
    y_values = sorted({str(row_value(r, y_key)) for r in done}, key=lambda v: (_numbers([v]) or [0.0], v))
    grid = np.full((len(y_values), len(x_values)), np.nan)
    spread = {}
    for r in done:
        cell = y_values.index(str(row_value(r, y_key))), x_values.index(str(row_value(r, x_key)))
        grid[cell], spread[cell] = r[metric], r.get(HALF_WIDTH)
        if r.get(VERDICT) == TIED:
            box = Rectangle((cell[1] - 0.5, cell[0] - 0.5), 1, 1, fill=False, edgecolor="orange", linewidth=2, ls="--")
            ax.add_patch(box)
    shown = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    ax.figure.colorbar(shown, ax=ax, label=metric)
    ax.set_xticks(range(len(x_values)), x_values)
    ax.set_yticks(range(len(y_values)), y_values)
    ax.set(xlabel=x_key, ylabel=y_key, title=f"{metric} ± 95% (red: best; dashed: tied)")
    middle = np.nanmin(grid) + (np.nanmax(grid) - np.nanmin(grid)) / 2
    for (row, col), value in np.ndenumerate(grid):
        if not np.isnan(value):
            colour = "black" if value > middle else "white"  # viridis is light at the top
            half = spread.get((row, col))
            text = f"{value:.4f}" + (f"\n± {half:.4f}" if half is not None else "")
            ax.text(col, row, text, ha="center", va="center", color=colour, fontsize=9)
    col, row = x_values.index(str(row_value(best, x_key))), y_values.index(str(row_value(best, y_key)))
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))


def _full_grid(keys: list[str], done: list[dict]) -> bool:
    """Two keys with two values or more each, and a finished job for every pair of them."""
    if len(keys) != 2:
        return False
    pairs = {(str(row_value(r, keys[0])), str(row_value(r, keys[1]))) for r in done}
    firsts, seconds = {a for a, _ in pairs}, {b for _, b in pairs}
    return len(firsts) > 1 and len(seconds) > 1 and len(pairs) == len(firsts) * len(seconds)


def _panel(
    ax, key: str, keys: list[str], shown: list[dict], best: dict, metric: str, log_keys: set[str], search: bool
) -> None:
    """`metric` against one key, on a log axis for a rate or a key searched on one; the jobs that share a value
    sit side by side, coloured by the values of the other compared keys; pruned trials are crosses (their metric
    when stopped); the best job is labelled."""
    others = [k for k in keys if k != key]
    if len({tuple(str(row_value(r, k)) for k in others) for r in shown}) > MAX_GROUPS:
        others = []  # a search's sampled values: too many combinations to tell apart by colour

    def group(row: dict) -> str:
        return ", ".join(f"{k}={row_value(row, k)}" for k in others) or "complete"

    groups = sorted({group(r) for r in shown})
    xs, labels = _axis_values([str(row_value(r, key)) for r in shown])
    log = labels is None and (key in log_keys or _is_rate(key)) and min(xs) > 0
    span = (max(xs) - min(xs)) or 1.0
    for n, name in enumerate(groups):
        shift = n - (len(groups) - 1) / 2  # side by side, not on top of each other
        for status, marker in (("ok", "o"), ("pruned", "x")):
            points = [(x, r) for x, r in zip(xs, shown, strict=True) if group(r) == name and r["status"] == status]
            if not points:
                continue
            at = [x * 1.06**shift if log else x + 0.03 * span * shift for x, _ in points]
            colour = f"C{n}" if status == "ok" else "grey"
            label = name if status == "ok" else None
            values = [r[metric] for _, r in points]
            ax.scatter(at, values, label=label, s=40, marker=marker, color=colour, zorder=3)
            errors = [r.get(HALF_WIDTH) or 0.0 for _, r in points]
            if status == "ok" and any(errors):  # each value's 95% interval
                ax.errorbar(at, values, yerr=errors, fmt="none", ecolor=colour, capsize=3, alpha=0.6, zorder=2)
    if any(r["status"] == "pruned" for r in shown):
        ax.scatter([], [], marker="x", color="grey", label="pruned")
    best_x = xs[shown.index(best)]
    half, ties = best.get(HALF_WIDTH), sum(r.get(VERDICT) == TIED for r in shown)
    ax.annotate(
        f"best {best[metric]:.4f}"
        + (f" ± {half:.4f}" if half is not None else "")
        + f"\n{best['job']}"
        + (f"\n{ties} more cannot be told apart" if ties else ""),
        (best_x, best[metric]),
        xytext=(0, -30),
        textcoords="offset points",
        ha="center",
        fontsize=8,
        arrowprops={"arrowstyle": "->"},
    )
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # matplotlib labels minor ticks under a decade: they overlap
    elif labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0)
    if labels is None and not search:  # a grid's values as its ticks; a search's sampled ones would overlap
        ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
        ax.minorticks_off()
    ax.set(xlabel=key + (" (log)" if log else ""), ylabel=metric)
    ax.grid(alpha=0.3)
    if len(groups) > 1 or any(r["status"] == "pruned" for r in shown):
        ax.legend(fontsize="x-small", title=", ".join(others) or None, title_fontsize="x-small")


def results_figure(
    keys: list[str],
    rows: list[dict],
    curves: dict[str, Curve],
    title: str,
    metric: str,
    log_keys: set[str] = frozenset(),
    search: bool = False,
) -> Figure:
    """A full two-key grid: a heatmap of the ranking `metric`; otherwise that metric against each compared key,
    pruned trials included. Then every job's validation curve by epoch, the best one thick, the legend outside
    the plot."""
    done = [r for r in rows if r["status"] == "ok" and r[metric] is not None]
    shown = [r for r in rows if r["status"] in ("ok", "pruned") and r[metric] is not None]
    best = next((r for r in done if r.get(VERDICT) == BEST), None)  # the table's best (lowest for a loss)
    heatmap = best is not None and len(shown) == len(done) and _full_grid(keys, done)
    panels = 1 if heatmap else len(keys) if best is not None else 0
    fig = Figure(figsize=(5.5 * panels + 7, 4.8), layout="constrained")
    axes = fig.subplots(1, panels + 1, squeeze=False)[0]
    if heatmap:
        _heatmap(axes[0], keys, done, best, metric)
    elif best is not None:
        for ax, key in zip(axes, keys, strict=False):
            _panel(ax, key, keys, shown, best, metric, log_keys, search)
    ax = axes[-1]
    for name, curve in curves.items():
        if curve:
            thick = best is not None and name in best.get("members", (best["job"], best["dir"]))
            width, order = (2.5, 3) if thick else (1, 2)
            ax.plot(*zip(*curve, strict=True), marker=".", label=name, linewidth=width, zorder=order)
    epochs = {epoch for curve in curves.values() for epoch, _ in curve}
    if epochs and max(epochs) <= 10:  # each epoch a tick (MaxNLocator draws 0.96, 0.98, … around a single one)
        ax.set_xticks(range(1, max(epochs) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="val/acc", title="validation accuracy by epoch")
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
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
