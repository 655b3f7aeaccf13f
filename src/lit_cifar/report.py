"""`python -m lit_cifar.report multirun/DATE/TIME`: a sweep's results as one table.

Writes `results.md`, `results.csv` (one row per job, best val/acc_best first, failed jobs last) and
`results.png` (val/acc_best against each swept value, and every job's validation curve) into the sweep dir,
and prints the table. Runs by itself at the end of every sweep (`lit_cifar.sweep.SweepReport`)."""

import argparse
import csv
import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

from lit_cifar.errors import UserError, exit_on_user_error
from lit_cifar.sweep import parse_overrides, run_name, swept_keys

Curve = list[tuple[int, float]]


def val_curve(log_dir: Path) -> Curve:
    """(epoch, val/acc) pairs from a TensorBoard run dir; empty when the job logged none."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not log_dir.is_dir():
        return []
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # no line per event file it reads
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    if "val/acc" not in tags:
        return []
    epoch_at = {e.step: int(e.value) for e in events.Scalars("epoch")} if "epoch" in tags else {}
    return [(epoch_at.get(e.step, i), e.value) for i, e in enumerate(events.Scalars("val/acc"))]


def collect(sweep_dir: Path) -> tuple[list[str], list[dict], dict[str, Curve]]:
    """The swept keys, one row per job (sorted) and each job's validation curve by run name."""
    keys = swept_keys(sweep_dir)
    job_dirs = sorted(
        (p.parents[1] for p in sweep_dir.glob("*/.hydra/overrides.yaml")),
        key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name),
    )
    if not job_dirs:
        raise UserError(f"{sweep_dir} holds no jobs (no */.hydra/overrides.yaml); did the sweep start?")
    rows, curves = [], {}
    for job_dir in job_dirs:
        overrides = parse_overrides(list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")))
        name = run_name(keys, overrides, job_dir.name)
        curves[name] = curve = val_curve(sweep_dir / "tensorboard" / name)
        path = job_dir / "metrics.json"
        record = (
            json.loads(path.read_text())
            if path.is_file()
            else {"status": "missing", "reason": "no metrics.json: the job was killed or is still running"}
        )
        metrics = record.get("metrics", {})
        rows.append(
            {
                "job": job_dir.name,
                **{k: overrides.get(k, "") for k in keys},
                "best_epoch": max(curve, key=lambda point: point[1])[0] if curve else None,
                "val/acc_best": metrics.get("val/acc_best"),
                "test/acc": metrics.get("test/acc"),
                "wall_time_s": record.get("wall_time_s"),
                "status": record.get("status", "ok"),
                "reason": record.get("reason", ""),
            }
        )
    rows.sort(key=lambda r: (r["status"] != "ok", -(r["val/acc_best"] or 0.0)))
    return keys, rows, curves


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if "acc" in column else f"{value:.1f}"
    return str(value).replace("|", "\\|")


def markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c, row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def plot(keys: list[str], rows: list[dict], curves: dict[str, Curve], path: Path, title: str) -> None:
    """val/acc_best against each swept key (finished jobs), then the validation curves of all jobs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "ok"]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.5 * (len(keys) + 1), 4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        values = [r[key] for r in done]
        numbers = _numbers(values)
        ax.scatter(numbers or values, [r["val/acc_best"] for r in done])
        if numbers and min(numbers) > 0 and max(numbers) >= 10 * min(numbers):
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel="val/acc_best")
        ax.grid(alpha=0.3)
    ax = axes[0][-1]
    for name, curve in curves.items():
        if curve:
            ax.plot(*zip(*curve, strict=True), marker=".", label=name)
    ax.set(xlabel="epoch", ylabel="val/acc")
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend(fontsize="x-small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(sweep_dir: Path) -> list[dict]:
    """Write results.md, results.csv and results.png into the sweep dir, print the table, return the rows."""
    keys, rows, curves = collect(sweep_dir)
    table = markdown(rows)
    (sweep_dir / "results.md").write_text(table)
    with (sweep_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(keys, rows, curves, sweep_dir / "results.png", title=str(sweep_dir))
    print(f"{sweep_dir}: {len(rows)} jobs, results.md, results.csv, results.png\n{table}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lit_cifar.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder, multirun/DATE/TIME")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        write_report(args.sweep_dir)


if __name__ == "__main__":
    main()
