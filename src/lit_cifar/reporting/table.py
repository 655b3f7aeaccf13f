"""Sweeps and runs as one table (`python -m lit_cifar.report`, and every sweep at its end).

A DIR is a sweep dir (multirun/DATE/TIME), a run dir (outputs/DATE/TIME) or a glob of them. Every job of a
sweep's grid gets a row, and so does every job folder the grid no longer holds (an earlier, wider one). A
row's status is `ok`; `pruned` (a search's trial its pruner stopped, and after which epoch); `failed` (with
the reason); `unreadable` (its metrics.json is corrupt); `running` (a live process holds its folder);
`interrupted` (no result and no process: after how many epochs it stopped, and how to resume it); or `pending`
(never started); or `smoke` (one batch or none: never ranked). A run whose metrics.json holds a metric that is no
finite number, or that lacks the metric the table ranks by, is `failed` with the reason. Finished runs come first,
best first by the sweeps' `optimized_metric` (val/acc_best unless a search set another; a loss ranks lowest first),
or by test/acc when the runs had no validation split (`data.val_size=0` in their resolved config: the table then says
that this selects on the test set). Sweeps that optimized different metrics, and runs measured on different data
(dataset, validation split, image counts), are refused in one line: one ranking cannot serve them.

A run is counted once, by the id it was given when it started (lit_cifar.run.record), or by its folder when it
has none: a copied folder, a link, a glob that reaches a sweep's job folders again add no row, and a line says which
folder is which. Runs of one setting with the same seed are one observation (lit_cifar.reporting.settings).

`results.md` starts with what each sweep held fixed (model, data, epochs, its other overrides, the commit of
the code) and the command that re-runs it, then the table; `results.csv` is the table alone; `results.png`
plots val/acc_best (or test/acc, as ranked) against each compared key, and every validation curve; a search
adds `search_history.png` (the best val/acc_best so far against trials and against epochs trained). For one
sweep dir they are written into it (also at the end of every sweep, by `reporting.sweep_report.SweepReport`). For
several dirs, or run dirs, the table gets a `dir` column and a column for each override whose value differs
between runs, and the files are written only into `--out`.

Every ranking carries its uncertainty (lit_cifar.reporting.settings): runs whose overrides differ only in `seed`
are one setting, ranked by their mean with a 95% interval (a second table gives n and the intervals of the ranked
metric and of test/acc when a setting has several runs); a single run's interval is the exact binomial one of its
accuracy on the images it was measured on, [low, high]. Each run's `vs best` is its setting's test against the best
(lit_cifar.reporting.compare: `tied (p 0.31)`, `worse (p 0.004)`), and the `best:` line at the end names the tied
ones. A sweep over two keys or more adds which keys matter, and one of three finished runs or more the expected
best of more trials (lit_cifar.reporting.effects); a compared key a run did not set shows the value it used. A line
says when the runs ran different code: runs of one setting on different code are settings of their own (a `code`
column), never seeds of one."""

import csv
import glob
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lit_cifar.reporting.effects import Effects, effects_note, effects_table, more_trials_note, of_settings
from lit_cifar.reporting.rows import Curve, row_value
from lit_cifar.reporting.settings import (
    CODE,
    INTERVAL,
    VERDICT,
    Setting,
    best_lines,
    changed_settings,
    code_splits,
    mark_runs,
    one_observation_note,
    settings,
    uncertainty_note,
)
from lit_cifar.run.dirs import in_use
from lit_cifar.run.errors import UserError
from lit_cifar.run.folders import RunRecord, Stored, SweepRecord, is_sweep_dir, load_folder
from lit_cifar.run.metrics import METRICS, higher_is_better
from lit_cifar.run.overrides import overrides_of
from lit_cifar.run.record import RANKED
from lit_cifar.run.validation_split import has_validation, ranked_metric
from lit_cifar.sweep.overrides import (
    confirmation_resume,
    expected_jobs,
    run_command,
    run_name,
    searches,
    sweep_command,
)

STATUSES = (
    "ok",
    "pruned",
    "running",
    "interrupted",
    "failed",
    "unreadable",
    "pending",
    "smoke",
)  # in the table's order
RESULTS = ["best_epoch", "val/acc_best", "test/acc", "wall_time_s", "status", "reason"]
RESUME_JOB = "re-run its sweep's command to resume it"
RESUME_CONFIRMATION = "re-run its confirmation to resume it"  # the sweep's command does not confirm
RANKED_BY_TEST = (
    "ranked by test/acc: runs without a validation split (data.val_size=0) have no val/acc_best; choosing a "
    "run by its test accuracy selects on the test set, which then no longer measures accuracy on new data"
)


def val_curve(log_dir: Path) -> Curve:
    """(epoch, val/acc) pairs from a TensorBoard run dir (lit_cifar.training.loggers.EpochTensorBoardLogger); empty when
    the job logged none."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not log_dir.is_dir():
        return []
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # no line per event file it reads
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    if "val/acc" not in tags:
        return []
    return [(e.step, e.value) for e in events.Scalars("val/acc")]  # written against the epoch, 1 the first


def _overrides(run: RunRecord) -> dict[str, str] | None:
    """The overrides a run recorded; None when it recorded none."""
    try:
        return overrides_of(run.overrides) if run.overrides is not None else None
    except Exception:  # edited by hand: the row shows what else the folder says
        return None


def _epochs_done(run: RunRecord, curve: Curve) -> str:
    """`3 of 10 epochs`: how far a run without a result got, by its validation curve."""
    total = run.resolved.get("trainer.max_epochs")
    done = max(epoch for epoch, _ in curve) if curve else 0
    return f"{done}{f' of {total}' if total else ''} epochs"


def measured_on(resolved: Stored, images: dict) -> dict:
    """What a run's accuracies were measured on: its dataset, validation split and image counts (what it did not
    record left out)."""
    target = resolved.get("data._target_")
    found = {
        "data": target.rsplit(".", 1)[-1] if isinstance(target, str) else None,
        "data.val_size": resolved.get("data.val_size"),
        "data.split_seed": resolved.get("data.split_seed"),
        **{f"{split} images": count for split, count in images.items()},
    }
    return {key: value for key, value in found.items() if value is not None}


def job_row(run: RunRecord, overrides: dict[str, str] | None, curve: Curve, resume: str) -> dict:
    """A run's row: its result from `metrics.json`, or what became of it when it has none. `resume` says
    how to go on with it when it was interrupted."""
    folder = run.dir
    if not folder.is_dir():
        record = {"status": "pending", "reason": "never started; re-running its sweep's command runs it"}
    elif record := run.outcome:
        pass
    elif in_use(folder):
        record = {"status": "running", "reason": f"{_epochs_done(run, curve)} done"}
    else:
        stopped = f"after {_epochs_done(run, curve)}" if curve else "before its first epoch ended"
        record = {"status": "interrupted", "reason": f"stopped {stopped}; {resume}"}
    metrics = record.get("metrics") or {}
    commit = record.get("git_commit")
    val_size = run.resolved.get("data.val_size")
    return {
        "job": folder.name,
        "dir": str(folder),
        "run_id": run.run_id,
        "name": run.resolved.get("name"),  # name= and tags= (joined by commas), as the run's config has them
        "tags": ",".join(str(tag) for tag in run.resolved.get("tags") or []),
        "record": run,  # what else its folder says (fill_unset)
        "overrides": overrides,
        "seed": (overrides or {}).get("seed", record.get("seed")),  # the config's own when no override set one
        "best_epoch": max(curve, key=lambda point: point[1])[0] if curve else None,
        **{name: metrics.get(name) for name in METRICS},
        "images": record.get("images") or {},  # how many images val and test measured accuracy on
        "wall_time_s": record.get("wall_time_s"),
        "status": record.get("status", "ok"),
        "reason": record.get("reason", ""),
        "code": f"{commit}{' (dirty)' if record.get('git_dirty') else ''}" if commit else None,
        "validation": None if val_size is None else has_validation(val_size),
        "measured_on": measured_on(run.resolved, record.get("images") or {}),
    }


def ranked_by(rows: list[dict], optimized: str = "val/acc_best") -> str:
    """The metric that ranks `rows`: the sweeps' `optimized` one (val/acc_best unless set), but test/acc when the
    finished runs had no validation split (data.val_size=0 in their resolved config)."""
    finished = [row for row in rows if row["status"] in RANKED]
    no_val = bool(finished) and all(row.get("validation") is False for row in finished)
    return ranked_metric(not no_val, optimized)


def fail_without(rows: list[dict], metric: str) -> None:
    """A finished run that did not record the metric the table ranks by is `failed`: its record is not whole."""
    for row in rows:
        if row["status"] in RANKED and row.get(metric) is None:
            row["status"], row["reason"] = "failed", f"no {metric} in its metrics.json, which this table ranks by"


def ranked(rows: list[dict], metric: str) -> list[dict]:
    """`rows` in the table's order: by status, then best first by `metric`, then by folder."""

    def rank(row: dict) -> tuple:
        status = STATUSES.index(row["status"]) if row["status"] in STATUSES else len(STATUSES)
        value = row.get(metric)
        if not isinstance(value, int | float):
            return status, 1, 0.0, row["dir"]  # no value: after those with one
        return status, 0, -value if higher_is_better(metric) else value, row["dir"]

    return sorted(rows, key=rank)


def collect(sweep: SweepRecord) -> tuple[list[str], list[dict], dict[str, Curve]]:
    """The swept keys; one row per job of the grid and per job folder outside it, in the table's order;
    each job's validation curve by its folder. A job's folder is named by its swept values (`run_name`)."""
    keys, found = sweep.swept_keys, sweep.job_names()
    grid = {run_name(keys, overrides_of(job), str(n)): job for n, job in enumerate(expected_jobs(sweep))}
    rows, curves = [], {}
    for name in [*grid, *sorted(set(found) - grid.keys())]:
        run = RunRecord.load(sweep.dir / name)
        overrides = _overrides(run)
        if overrides is None and name in grid:
            overrides = overrides_of(grid[name])
        curves[str(run.dir)] = curve = val_curve(sweep.dir / "tensorboard" / name)
        confirming = confirmation_resume(run)
        resume = f"{RESUME_CONFIRMATION}: {confirming}" if confirming else RESUME_JOB
        rows.append(job_row(run, overrides, curve, resume))
    return keys, ranked(rows, ranked_by(rows)), curves


def collect_run(run: RunRecord) -> tuple[dict, Curve]:
    """The row and validation curve of a run dir, or of one job folder of a sweep passed by itself."""
    lines = run.overrides
    sweep_dir = run.dir.parent
    if is_sweep_dir(sweep_dir):
        if confirming := confirmation_resume(run):
            resume = f"{RESUME_CONFIRMATION}: {confirming}"
        else:
            resume = f"{RESUME_JOB}: {sweep_command(SweepRecord.load(sweep_dir))}"
        log_dir = sweep_dir / "tensorboard" / run.dir.name
    else:
        log_dir, resume = run.dir / "tensorboard", f"resume it with: {run_command(lines, run.dir)}"
    curve = val_curve(log_dir)
    return job_row(run, overrides_of(lines), curve, resume), curve


def _code(rows: list[dict]) -> list[str]:
    commits = sorted({row["code"] for row in rows if row["code"]})
    return [f"code: git commit {', '.join(commits)}"] if commits else []


def held_fixed(sweep: SweepRecord) -> dict:
    """A sweep's config choices (model, data, …), its trainer.max_epochs and its command line's overrides."""
    fixed = sweep.choices
    if (epochs := sweep.config.get("trainer.max_epochs")) is not None:
        fixed["trainer.max_epochs"] = epochs
    fixed.update(overrides_of(sweep.task))
    return fixed


def sweep_title(sweep: SweepRecord, keys: list[str]) -> str:
    """`week11_cnn on cifar10, 6 epochs (multirun/…)`, with `several` for what the sweep varies."""
    fixed = held_fixed(sweep)

    def what(key: str) -> str:
        return "several" if key in keys else str(fixed.get(key, "?"))

    epochs = what("trainer.max_epochs")
    return f"{what('model')} on {what('data')}, {epochs} epochs ({sweep.dir})"


RERUN_GRID = (
    "skips finished jobs, resumes interrupted ones and runs pending ones (and failed ones with `rerun_failed=true`)"
)
RERUN_SEARCH = (
    "goes on with the study: finished, pruned and failed trials count, interrupted ones resume; "
    "a larger hydra.sweeper.n_trials adds trials"
)


def describe_sweep(sweep: SweepRecord, keys: list[str], rows: list[dict]) -> tuple[str, list[str]]:
    """What a sweep compared and held fixed, the code its jobs ran, how they stand and how to re-run it."""
    fixed = held_fixed(sweep)
    counts = Counter(row["status"] for row in rows)  # rows come in the table's order, and so do statuses
    return f"Sweep {sweep.dir}", [
        f"swept: {', '.join(keys) or 'nothing'}",
        f"fixed: {', '.join(f'{key}={value}' for key, value in fixed.items() if key not in keys)}",
        *_code(rows),
        f"jobs: {len(rows)} ({', '.join(f'{n} {status}' for status, n in counts.items())})",
        f"command: `{sweep_command(sweep)}`; re-running it {RERUN_SEARCH if searches(sweep) else RERUN_GRID}",
    ]


def describe_run(row: dict) -> tuple[str, list[str]]:
    overrides = " ".join(f"{key}={value}" for key, value in row["overrides"].items())
    return f"Run {row['dir']}", [f"overrides: {overrides or 'none'}", *_code([row])]


def fill_unset(rows: list[dict], keys: list[str]) -> None:
    """A compared key that a run did not set gets the value the run used (its resolved config's, or a config
    group's choice from its Hydra record), so that every row shows it and runs of the same values are one setting."""
    for row in rows:
        unset = [key for key in keys if row["overrides"] is not None and key not in row["overrides"]]
        for key in unset:
            if (value := row["record"].setting(key)) is not None:
                row["overrides"][key] = str(value)


def compared_keys(swept: list[str], rows: list[dict]) -> list[str]:
    """The swept keys, then every other key whose value differs between the runs (unset is a value too), then
    `code` when runs of one setting ran different code."""
    found = [changed_settings(row["overrides"]) for row in rows if row["overrides"] is not None]
    others = {key for setting in found for key in setting} - set(swept)
    differ = sorted(key for key in others if len({setting.get(key) for setting in found}) > 1)
    return swept + differ + ([CODE] if code_splits(rows) else [])


def by_setting_table(found: list[Setting], keys: list[str], metric: str) -> list[dict]:
    """One row per setting, best first: n ok seeds, the mean and 95% interval of the ranked metric and of
    test/acc, the verdict, and the runs that are not ok."""
    table = []
    for setting in found:
        row = {key: row_value(setting.runs[0], key) for key in keys if key != "seed"}
        values = {metric: setting.value, "test/acc": setting.test}
        row |= {"n": len(setting.seeds), **{name: "" if v is None else str(v) for name, v in values.items()}}
        row[VERDICT] = setting.verdict
        row["not ok"] = ", ".join(f"{_who(run)} {run['status']}" for run in setting.runs if run["status"] != "ok")
        table.append(row)
    return table


def setting_rows(found: list[Setting], metric: str) -> list[dict]:
    """Each setting as a row the figures draw like a run's: its mean, interval and verdict, and its runs'
    names (`members`: their curves are the setting's)."""
    rows = []
    for setting in found:
        if setting.value is None:
            continue
        members = {name for run in setting.ok for name in (run["job"], run["dir"])}
        shown = {"job": setting.label, metric: setting.value.mean, INTERVAL: setting.value.interval}
        rows.append(setting.ok[0] | shown | {VERDICT: setting.verdict, "members": members, "n": len(setting.seeds)})
    return rows


def _who(row: dict) -> str:
    seed = (row["overrides"] or {}).get("seed")
    return f"seed={seed}" if seed is not None else row["dir"]


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if column in METRICS else f"{value:.1f}"
    return str(value).replace("|", "\\|")


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c, row_value(row, c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def optimized_metric(folders: list[SweepRecord | RunRecord]) -> str:
    """The metric the sweeps among `folders` optimized (`optimized_metric`, val/acc_best unless set): a search may
    minimize a loss. Run dirs follow the sweeps, and alone are ranked by val/acc_best. Sweeps that optimized
    different metrics are refused: one ranking cannot serve them."""
    metrics: dict[str, dict[str, None]] = {}
    for sweep in folders:
        if isinstance(sweep, SweepRecord):
            metrics.setdefault(sweep.optimized_metric, {})[str(sweep.dir)] = None
    if len(metrics) > 1:
        raise UserError(
            f"these sweeps optimized different metrics, which one ranking cannot serve: {_where(metrics)}; "
            "report each metric's sweeps apart"
        )
    return next(iter(metrics), "val/acc_best")


def _where(found: dict[object, dict[str, None]]) -> str:
    """`500 in A, 1000 in B and C`: each value and the folders that hold it."""
    return ", ".join(f"{value} in {' and '.join(folders)}" for value, folders in found.items())


def refuse_mixed_data(rows: list[dict]) -> None:
    """One ranking compares runs measured on the same images: runs measured on other data (another dataset,
    validation split or image count) are refused, in one line naming the folders and what differs (the folders
    given, or the jobs' own where one sweep holds both)."""
    finished = [row for row in rows if row["status"] in RANKED]
    differences = []
    for key in dict.fromkeys(key for row in finished for key in row["measured_on"]):
        have = [row for row in finished if key in row["measured_on"]]
        sources = {row["source"]: {r["measured_on"][key] for r in have if r["source"] == row["source"]} for row in have}
        named = "dir" if any(len(values) > 1 for values in sources.values()) else "source"
        folders: dict[object, dict[str, None]] = {}
        for row in have:
            folders.setdefault(row["measured_on"][key], {})[row[named]] = None
        if len(folders) > 1:
            differences.append(f"{key}: {_where(folders)}")
    if differences:
        raise UserError(
            f"these runs were measured on different data, which one ranking would mix: {'; '.join(differences)}; "
            "report them apart"
        )


def identity(row: dict) -> tuple:
    """What makes two rows one run: the id it was given when it started (or for a run without one, its folder) and
    where it got to: a copy that trained on since is a run of its own."""
    outcome = (row["status"], *(row.get(name) for name in METRICS))
    where = ("run", row["run_id"]) if row.get("run_id") else ("folder", str(Path(row["dir"]).resolve()))
    return (*where, *outcome)


def _same_run(again: dict, first: dict) -> str:
    if again["dir"] == first["dir"]:
        return f"{again['dir']} passed twice"
    if Path(again["dir"]).resolve() == Path(first["dir"]).resolve():
        return f"{again['dir']} is {first['dir']} (a link)"
    return f"{again['dir']} is a copy of {first['dir']}"


def counted_once(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """`rows` with each run once (its first row), and which folder each row left out is the same run as."""
    first: dict[tuple, dict] = {}
    kept, same = [], []
    for row in rows:
        found = first.setdefault(identity(row), row)
        if found is row:
            kept.append(row)
        else:
            same.append(_same_run(row, found))
    return kept, same


@dataclass
class Gathered:
    """Every run of the folders a table was asked for, each counted once."""

    folders: list[SweepRecord | RunRecord]  # the folders that hold a run counted
    swept: list[str]
    rows: list[dict]  # one per run, in the table's order
    curves: dict[str, Curve]  # the validation curves by folder
    blocks: list[tuple[str, list[str]]]  # a title and description of each path
    metric: str  # what ranks them
    same_runs: list[str]  # the folders left out, each the same run as a row


def gather(paths: list[Path]) -> Gathered:
    """Every run in `paths` (sweep dirs and run dirs), each once; refused when the sweeps optimized different
    metrics or the runs were measured on different data."""
    folders = [load_folder(path) for path in paths]
    optimized = optimized_metric(folders)
    collected, curves = [], {}
    for folder in folders:
        if isinstance(folder, SweepRecord):
            keys, path_rows, path_curves = collect(folder)
        else:
            row, curve = collect_run(folder)
            keys, path_rows, path_curves = [], [row], {str(folder.dir): curve}
        for row in path_rows:
            row["source"] = str(folder.dir)
        collected.append((folder, keys, path_rows))
        curves |= path_curves
    everything = [row for _, _, path_rows in collected for row in path_rows]
    rows, same_runs = counted_once(everything)
    refuse_mixed_data(rows)
    metric = ranked_by(rows, optimized)
    fail_without(everything, metric)
    counted = {id(row) for row in rows}
    kept = [(path, keys, path_rows) for path, keys, path_rows in collected if any(id(r) in counted for r in path_rows)]
    blocks = [describe_sweep(*got) if isinstance(got[0], SweepRecord) else describe_run(got[2][0]) for got in kept]
    return Gathered(
        folders=[folder for folder, _, _ in kept],
        swept=list(dict.fromkeys(key for _, keys, _ in kept for key in keys)),
        rows=ranked(rows, metric),
        curves={folder: curve for folder, curve in curves.items() if folder in {row["dir"] for row in rows}},
        blocks=blocks,
        metric=metric,
        same_runs=same_runs,
    )


def render(
    blocks: list[tuple[str, list[str]]], keys: list[str], rows: list[dict], columns: list[str], found: list[Setting],
    metric: str, same_runs: list[str] = (), effects: Effects | None = None, trial_values: list[float] = (),
) -> str:  # fmt: skip
    """results.md: what each folder ran, what the table counted, how sure the ranking is, one row per setting when
    some runs differ only in seed, which keys matter and whether more trials would help, every run, and the best
    setting with those that cannot be told apart from it."""
    parts = [] if len(blocks) == 1 else [f"# {len(rows)} runs from {len(blocks)} folders\n"]
    heading = "#" if len(blocks) == 1 else "##"
    parts += [f"{heading} {title}\n\n" + "".join(f"- {line}\n" for line in lines) for title, lines in blocks]
    parts += [*_notes(rows, found, keys, same_runs), f"Ranked by {uncertainty_note(found, metric)}\n"]
    if metric == "test/acc":
        parts.append(f"{RANKED_BY_TEST}.\n")
    if any(len(setting.runs) > 1 for setting in found):
        table = by_setting_table(found, keys, metric)
        parts.append(
            "## By setting\n\nRuns whose overrides differ only in `seed` are one setting; n: how many seeds of it "
            "are ok (runs with the same seed count once). Its values are the mean ± the half-width of a 95% t "
            "interval over its seeds, or a single seed's value and exact binomial interval [low, high].\n\n"
            + markdown(table, list(table[0]))
        )
    if effects is not None:
        table = effects_table(effects, metric)
        parts.append(f"## Which keys matter\n\n{effects_note(effects, metric)}\n\n" + markdown(table, list(table[0])))
    if len(trial_values) >= 3:
        parts.append(f"## Would more trials help\n\n{more_trials_note(trial_values, higher_is_better(metric))}\n")
    parts.append("## Runs\n\n" + markdown(rows, columns))
    if len(found) > 1 or len(blocks) > 1 or is_sweep_dir(Path(rows[0]["dir"]).parent):
        parts.append("\n".join(best_lines(found, metric)) + "\n")
    return "\n".join(parts)


def _notes(rows: list[dict], found: list[Setting], keys: list[str], same_runs: list[str]) -> list[str]:
    """What the table counted: the runs reached through several folders, the runs that are one seed, and the code
    the runs ran when it differs."""
    lines = [f"counted once (the same run id, or the same folder): {'; '.join(same_runs)}"] if same_runs else []
    lines += one_observation_note(found)
    codes = sorted({row["code"] for row in rows if row["code"]})  # a dirty tree's code is a code of its own
    if len(codes) > 1:
        column = " (the code column)" if CODE in keys else ""
        lines.append(
            f"code: these runs ran different code (git commits {', '.join(codes)}): runs of different code are "
            f"never seeds of one setting{column}"
        )
    return [f"{line}\n" for line in lines]


def report(paths: list[Path], out: Path | None) -> list[dict]:
    """One table of every run in `paths`: printed, and written into `out` as results.md, results.csv and
    results.png when `out` is given. Returns the rows, one per run, in the table's order."""
    found_runs = gather(paths)
    folders, rows, curves, metric = found_runs.folders, found_runs.rows, found_runs.curves, found_runs.metric
    sweep = folders[0] if len(folders) == 1 and isinstance(folders[0], SweepRecord) else None
    one_sweep = sweep is not None
    keys = compared_keys(found_runs.swept, rows)
    fill_unset(rows, keys)
    found = settings(rows, keys, metric)
    mark_runs(found, metric)
    log_keys = sweep.log_scaled_keys if one_sweep else set()
    sampled = set().union(*(folder.sampled_keys for folder in folders if isinstance(folder, SweepRecord)))
    effects, trial_values = of_settings(found, keys, metric, log_keys, sampled)
    results = [*RESULTS[:1], *([] if metric in RESULTS else [metric]), *RESULTS[1:]]
    at = results.index(metric) + 1
    labels = [label for label in ("name", "tags") if any(row[label] for row in rows)]  # when a run has one
    columns = ["job" if one_sweep else "dir", *labels, *keys, *results[:at], INTERVAL, VERDICT, *results[at:]]
    text = render(found_runs.blocks, keys, rows, columns, found, metric, found_runs.same_runs, effects, trial_values)
    print(text, end="")
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a folder under one that cannot hold it (/proc, a file): the table is printed above
            why = f"cannot make the folder {out} for the report ({err.strerror})"
            raise UserError(f"{why}; pass another --out") from None
        (out / "results.md").write_text(text)
        with (out / "results.csv").open("w", newline="") as f:
            csv.writer(f).writerows([columns, *([row_value(row, c) for c in columns] for row in rows)])
        labels = {folder: Path(folder).name if one_sweep else folder for folder in curves}
        title = sweep_title(sweep, keys) if one_sweep else f"{len(rows)} runs"
        from lit_cifar.reporting.plots import plot, plot_history  # matplotlib only where a figure is drawn

        search = one_sweep and searches(sweep)
        figure_curves = {labels[f]: curve for f, curve in curves.items()}
        seeds = any(len(setting.runs) > 1 for setting in found)  # then the figure shows settings, not runs
        shown = (setting_rows(found, metric), [k for k in keys if k != "seed"]) if seeds else (rows, keys)
        plot(out / "results.png", shown[1], shown[0], figure_curves, title, metric, log_keys, search, effects,
             trial_values)  # fmt: skip
        written = ["results.md", "results.csv", "results.png"]
        if search:
            plot_history(rows, curves, out / "search_history.png", title, metric)
            written.append("search_history.png")
        print(f"\nwritten into {out}: {', '.join(written)}")
    return rows


def write_report(sweep_dir: Path) -> list[dict]:
    """Write results.md, results.csv and results.png into the sweep dir, print the table, return the rows."""
    return report([sweep_dir], out=sweep_dir)


def expand(patterns: list[str]) -> list[Path]:
    """The folders named, a glob pattern (quoted, so that the shell left it) standing for those it matches."""
    paths = [
        Path(p)
        for pattern in patterns
        for p in ([pattern] if Path(pattern).exists() else sorted(glob.glob(pattern)) or [pattern])
    ]
    return list(dict.fromkeys(paths))
