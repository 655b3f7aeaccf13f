"""Figure 8 of `make bench`: what a sweep job costs beyond its own fit and test. One sweep of `--overhead-jobs`
one-epoch jobs (by default 12 of week11_cnn on the slice, one seed each) with the basic launcher (one job after
another, in the sweep's process) and with the parallel one (`--overhead-parallel` warm workers), through the command
a user types. A job records its fit and test time (metrics.json's `wall_time_s`); what the sweep took beyond them,
per job, is `(wall time x jobs at once - the sum of the jobs' fit and test times) / jobs`: the process start,
imports, config composition, the run folder, the table and plot at the end. And the time from the command to the
first line a job prints (its name first)."""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

LAUNCHERS = {"basic": [], "parallel": ["hydra/launcher=parallel"]}


def sweep_overhead(args: argparse.Namespace) -> list[dict]:
    """One row per launcher: jobs, jobs at once, the sweep's wall time, the sum of its jobs' fit and test times
    and the cost per job beyond them."""
    seeds = ",".join(str(seed) for seed in range(args.overhead_jobs))
    rows = []
    for name, launcher in LAUNCHERS.items():
        at_once = args.overhead_parallel if launcher else 1
        sweep_dir = Path(args.tmp) / f"overhead-{name}"
        command = [
            sys.executable, "-m", "lit_cifar.train", "-m", *launcher,
            *([f"hydra.launcher.n_jobs={at_once}"] if launcher else []),
            f"data.root={args.data_root}", f"data.verify_checksums={str(args.verify_checksums).lower()}",
            "data.download=false", f"data.val_size={args.val_size}", "data.num_workers=0", "trainer=cpu",
            "callbacks.progress_bar=null",
            "model=week11_cnn", "trainer.max_epochs=1", f"seed={seeds}", f"hydra.sweep.dir={sweep_dir}",
        ]  # fmt: skip
        start, first_job = time.perf_counter(), None
        sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in sweep.stdout:  # a job's console lines start with its name: `[seed=0] …`
            lines.append(line)
            if first_job is None and line.startswith("["):
                first_job = time.perf_counter() - start
        wall = time.perf_counter() - start
        if sweep.wait() != 0:
            raise RuntimeError(f"the {name} launcher's sweep failed:\n{''.join(lines)[-3000:]}")
        own = sum(json.loads(path.read_text())["wall_time_s"] for path in sweep_dir.glob("*/metrics.json"))
        rows.append({
            "launcher": name, "jobs": args.overhead_jobs, "at_once": at_once, "first_job_s": first_job,
            "wall_s": wall, "fit_test_s": own, "beyond_per_job_s": (wall * at_once - own) / args.overhead_jobs,
        })  # fmt: skip
    return rows


def overhead_markdown(rows: list[dict]) -> list[str]:
    lines = [
        "## 8. What a sweep job costs beyond its own fit and test",
        "",
        "| launcher | jobs | at once | first job's first line, s | sweep wall s | sum of jobs' fit + test s "
        "| beyond fit + test, s per job |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['launcher']} | {r['jobs']} | {r['at_once']} | {r['first_job_s']:.1f} | {r['wall_s']:.1f} | "
        f"{r['fit_test_s']:.1f} | "
        f"{r['beyond_per_job_s']:.2f} |"
        for r in rows
    ]
    return lines
