"""What a multirun adds to a training: jobs that fail without stopping the sweep, TensorBoard runs named by
their swept overrides, parallel jobs sharing the machine, and the results table when the sweep ends."""

import fcntl
import hashlib
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from lit_cifar.checkpoints import FREE_TO_CHANGE, RunRefused
from lit_cifar.errors import UserError, exit_on_user_error, user_message
from lit_cifar.rundir import in_use, lock, this_run_dir
from lit_cifar.search import RunPruned, is_search, trial_name
from lit_cifar.validate import check_needs_validation

log = logging.getLogger(__name__)


def as_typed(lines: ListConfig | DictConfig) -> list[str] | dict:
    """Override lines (or sweeper params) as typed: their interpolations stay unresolved, since resolving
    one such as the sweep dir's `${lit_cifar.claim:…}` would claim another folder."""
    return OmegaConf.to_container(lines, resolve=False)


def grid_of(hydra_cfg: DictConfig) -> list[str]:
    """A sweep's `hydra.sweeper.params` (set by the named `sweep=` configs) as override lines."""
    params = hydra_cfg.sweeper.get("params")
    return [f"{key}={value}" for key, value in as_typed(params).items()] if params else []


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """`key=value` override lines as {key: value as written}; a `+`/`++` prefix is dropped from the key."""
    parsed = OverridesParser.create().parse_overrides(lines)
    return {o.key_or_group: line.split("=", 1)[1] for o, line in zip(parsed, lines, strict=True) if "=" in line}


def swept_keys(sweep_dir: Path) -> list[str]:
    """The keys a sweep varies: those in sweep syntax (`a=1,2`, `range(…)`, `interval(…)`) on its command line
    or in `hydra.sweeper.params` (the named `sweep=` configs), read from the sweep's `multirun.yaml`."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        raise UserError(f"{sweep_dir} is not a sweep dir (no multirun.yaml); pass a multirun/DATE/TIME folder")
    hydra_cfg = OmegaConf.load(path).hydra
    parsed = OverridesParser.create().parse_overrides(grid_of(hydra_cfg) + as_typed(hydra_cfg.overrides.task))
    last: dict = {}  # each key's last value (the command line's replaces the config's), in the order they come
    for override in parsed:
        last.pop(override.key_or_group, None)
        last[override.key_or_group] = override
    return [key for key, override in last.items() if override.is_sweep_override()]


def run_name(keys: list[str], overrides: dict[str, str], job: str) -> str:
    """`data.batch_size=512,optim.lr=0.002`: the job's values of the swept keys, sorted by key (the job
    number when nothing is swept). It names the job's folder and its TensorBoard run, so a job is found
    again by what it trains, whatever its number in a longer or reordered grid."""
    name = ",".join(f"{k}={overrides[k]}" for k in sorted(overrides) if k in keys).replace("/", "_")
    if len(name.encode()) > 200:  # a folder name has at most 255 bytes: keep the start, and a hash for the rest
        name = f"{name.encode()[:180].decode(errors='ignore')}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name or job


def sweep_overrides(sweep_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """From the `multirun.yaml` of the sweep in `sweep_dir`: its command line's task overrides, its Hydra
    overrides (launcher, …) and its grid (`hydra.sweeper.params`, where a named `sweep=` config sets one)."""
    hydra_cfg = OmegaConf.load(sweep_dir / "multirun.yaml").hydra
    task = as_typed(hydra_cfg.overrides.task)
    own = ("hydra.sweep.dir=", "hydra.mode=")  # the re-run command sets its sweep dir; -m sets the mode
    hydra_only = [o for o in as_typed(hydra_cfg.overrides.hydra) if not o.startswith(own)]
    return task, hydra_only, grid_of(hydra_cfg)


def expected_jobs(sweep_dir: Path) -> list[list[str]]:
    """Every job's override list, as Hydra's basic sweeper expands the sweep in `sweep_dir`."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if is_search(OmegaConf.load(sweep_dir / "multirun.yaml").hydra):
        return []  # a search's trials are asked for one by one: none is pending before it runs
    task, _, grid = sweep_overrides(sweep_dir)
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(grid + task), None)
    return jobs


def sweep_arguments(sweep_dir: Path, changes: list[str] = ()) -> list[str]:
    """The `lit_cifar.train` arguments that re-run the sweep in `sweep_dir`, with `changes` (override lines)
    in place of its own values for the same keys: it skips finished jobs, resumes killed ones and runs those
    that never started."""
    task, hydra_only, _ = sweep_overrides(sweep_dir)

    def key(line: str) -> str:
        return line.split("=", 1)[0].lstrip("+~")

    changed = {key(line) for line in changes}
    kept = [line for line in hydra_only + task if key(line) not in changed]
    return ["-m", *kept, *changes, f"hydra.sweep.dir={sweep_dir.resolve()}"]  # from any working directory


def sweep_command(sweep_dir: Path) -> str:
    """The command that re-runs the sweep in `sweep_dir` (see `sweep_arguments`)."""
    return shlex.join(["python", "-m", "lit_cifar.train", *sweep_arguments(sweep_dir)])


def run_command(overrides: list[str], run_dir: Path) -> str:
    """The command that goes on with the single run in `run_dir`, given the overrides it was started with."""
    given = [o for o in overrides if not o.startswith(("ckpt_path=", "hydra.run.dir=", "hydra.mode="))]
    return shlex.join(["python", "-m", "lit_cifar.train", *given, "ckpt_path=last", f"hydra.run.dir={run_dir}"])


def _log_root() -> str:
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.sweep.dir if in_multirun() else this_run_dir()


def job_name(hydra_cfg: DictConfig, overrides: list[str], job_num: int) -> str:
    """A sweep job's folder and TensorBoard run: `trial-007` in a search, else its swept values (`run_name`)."""
    if is_search(hydra_cfg):
        return trial_name(job_num)
    return run_name(swept_keys(Path(hydra_cfg.sweep.dir)), parse_overrides(overrides), str(job_num))


def _run_name() -> str:
    if not in_multirun():
        return ""
    hydra_cfg = HydraConfig.get()
    if OmegaConf.is_missing(hydra_cfg.job, "num"):  # a config printed with --cfg job --resolve: no job yet
        return "<job name>"
    return job_name(hydra_cfg, as_typed(hydra_cfg.overrides.task), hydra_cfg.job.num)


# For conf/logger/tensorboard.yaml: a single run logs into its run dir; the jobs of a sweep log side by side
# under the sweep dir, each named by its overrides.
OmegaConf.register_new_resolver("lit_cifar.log_root", _log_root, replace=True)
OmegaConf.register_new_resolver("lit_cifar.run_name", _run_name, replace=True)


def record_lost_job(hydra_cfg: DictConfig, job_num: int, overrides: list[str], reason: str) -> None:
    """For a launcher: a job that ended without recording its outcome (its process killed, its cluster job
    cancelled) gets `metrics.json` with status `failed` and `reason`, so the sweep's table shows it and
    `rerun_failed=true` resumes it. A job that died before claiming its folder stays pending; one that had
    recorded its outcome keeps it."""
    job_dir = Path(hydra_cfg.sweep.dir) / job_name(hydra_cfg, overrides, job_num)
    log.error("job %s: %s", job_dir.name, reason)
    if job_dir.is_dir() and not in_use(job_dir) and not (job_dir / "metrics.json").exists():
        (job_dir / "metrics.json").write_text(json.dumps({"status": "failed", "reason": reason}, indent=2))


@contextmanager
def failure_recorded(run_dir: Path) -> Iterator[None]:
    """In a sweep job: turn any exception into `metrics.json` with status `failed` and the reason, so the
    other jobs run on; the traceback goes to the job's log. A job refused because its folder holds a run
    it would change leaves that folder as it is, and stops the sweep. A search's trial stopped by its pruner is
    recorded as `pruned`."""
    try:
        yield
    except RunRefused as err:  # the sweep stops here: its other jobs would be refused the same way
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunPruned as pruned:
        record = {"status": "pruned", "reason": str(pruned), "pruned_at_epoch": pruned.epoch}
        record["metrics"] = {"val/acc_best": pruned.best}
        (run_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    except Exception as err:
        reason = user_message(err) or f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
        log.exception("job failed: %s", reason)
        (run_dir / "metrics.json").write_text(json.dumps({"status": "failed", "reason": reason}, indent=2))


def refuse_several_devices(cfg: DictConfig) -> None:
    if "ddp" in str(cfg.trainer.get("strategy")) or cfg.trainer.get("devices", 1) != 1:
        raise UserError(
            "a multirun cannot train on several devices: Lightning's ddp starts the script again in "
            "every rank, which would run the sweep in each; sweep with trainer.devices=1"
        )


def parallel_share(n_jobs: int, n_cpus: int) -> int:
    """Threads for each of `n_jobs` jobs running at once: the cores split evenly, never below one."""
    return max(1, n_cpus // n_jobs)


def job_gpus(trainer: DictConfig) -> int:
    """How many GPUs a sweep's jobs are spread over: every visible one when a job asks for the default single
    device and may train on a GPU (accelerator auto, gpu or cuda); none otherwise."""
    if trainer.get("accelerator") not in ("auto", "gpu", "cuda") or trainer.get("devices") != 1:
        return 0
    import torch

    return torch.cuda.device_count()


def parallel_jobs(n_jobs: int, n_gpus: int = 0) -> int:
    """How many jobs run at once for joblib's `n_jobs` (-1: one per core, -2: all cores but one, …). Jobs that
    train on `n_gpus` GPUs count GPUs instead of cores (-1: one job per GPU), never more jobs than GPUs."""
    units = n_gpus or os.cpu_count() or 1
    at_once = n_jobs if n_jobs > 0 else max(1, units + 1 + n_jobs)
    return min(at_once, n_gpus) if n_gpus else at_once


def take_free_gpu(sweep_dir: Path, n_gpus: int, job_num: int) -> tuple[int, int | None]:
    """The first of `n_gpus` GPUs that no other job of the sweep holds, and the fd whose lock (`flock` on
    `.gpus/<index>` in the sweep dir) holds it until closed; the kernel lets go of a killed job's lock. When all
    are held (more jobs at once than GPUs, as the joblib launcher may run), GPU job_num modulo count, shared,
    and no fd."""
    folder = sweep_dir / ".gpus"
    folder.mkdir(exist_ok=True)
    for index in range(n_gpus):
        fd = os.open(folder / str(index), os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return index, fd
    log.warning(
        "all %d GPUs are held by other jobs of this sweep: this one shares GPU %d; run at most one job per GPU "
        "(hydra/launcher=parallel does)",
        n_gpus,
        job_num % n_gpus,
    )
    return job_num % n_gpus, None


# The lock on this process's GPU (take_free_gpu). A job of the parallel launcher holds it for its whole process;
# a joblib worker that runs several jobs lets it go when its next job takes a GPU.
_held_gpu: int | None = None


def share_machine(cfg: DictConfig) -> None:
    """Under the parallel (or joblib) launcher, keep parallel jobs from oversubscribing the cores, and give a job
    that asks for the default single device a GPU that no other job of the sweep holds."""
    global _held_gpu
    hydra_cfg = HydraConfig.get()
    if not in_multirun() or "n_jobs" not in hydra_cfg.launcher:
        return
    import torch

    n_gpus = job_gpus(cfg.trainer)
    threads = parallel_share(parallel_jobs(hydra_cfg.launcher.n_jobs, n_gpus), os.cpu_count() or 1)
    torch.set_num_threads(threads)
    if n_gpus:
        if _held_gpu is not None:
            os.close(_held_gpu)
        gpu, _held_gpu = take_free_gpu(Path(hydra_cfg.sweep.dir), n_gpus, hydra_cfg.job.num)
        cfg.trainer.devices = [gpu]
    log.info("parallel job: %d threads, devices=%s", threads, cfg.trainer.devices)


def _fixed_and_swept(task: list[str], grid: list[str]) -> tuple[dict[str, str], set[str]]:
    """A sweep's settings that change what its jobs compute, held fixed ({key: value}), and the keys it varies."""
    parsed = OverridesParser.create().parse_overrides(grid + task)
    fixed = {o.key_or_group: o.get_value_element_as_str() for o in parsed if not o.is_sweep_override()}
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    free = (*FREE_TO_CHANGE, "trainer.max_epochs")  # the jobs themselves check that epochs only go up
    return {k: v for k, v in fixed.items() if k not in swept and not k.startswith(free)}, swept


def refuse_another_sweep(sweep_dir: Path, config: DictConfig) -> None:
    """A sweep dir holds one experiment: a re-run may add values to the swept keys (and raise
    trainer.max_epochs), but not hold other settings fixed or vary other keys."""
    if not (sweep_dir / "multirun.yaml").is_file():
        return
    task, _, grid = sweep_overrides(sweep_dir)
    before = _fixed_and_swept(task, grid)
    after = _fixed_and_swept(as_typed(config.hydra.overrides.task), grid_of(config.hydra))
    changes = [
        f"{key}: {before[0].get(key, '(unset)')} -> {after[0].get(key, '(unset)')}"
        for key in sorted(before[0].keys() | after[0].keys())
        if before[0].get(key) != after[0].get(key)
    ]
    if before[1] != after[1]:
        changes.append(f"swept keys: {', '.join(sorted(before[1]))} -> {', '.join(sorted(after[1]))}")
    old_epochs = OmegaConf.select(OmegaConf.load(sweep_dir / "multirun.yaml"), "trainer.max_epochs")
    new_epochs = OmegaConf.select(config, "trainer.max_epochs")
    if isinstance(old_epochs, int) and isinstance(new_epochs, int) and new_epochs < old_epochs:
        changes.append(f"trainer.max_epochs: {old_epochs} -> {new_epochs} (it may only be raised)")
    elif is_search(config.hydra) and old_epochs != new_epochs:  # a study compares its trials at equal epochs
        changes.append(f"trainer.max_epochs: {old_epochs} -> {new_epochs} (a search's trials train alike)")
    if changes:
        raise UserError(
            f"{sweep_dir} holds a sweep of other settings: {'; '.join(changes)}; re-run it with its own "
            f"settings ({sweep_command(sweep_dir)}), or pick a new hydra.sweep.dir"
        )


class SweepReport(Callback):
    """Before a sweep: hold its sweep dir (one sweep at a time), refuse a re-run that would change what the
    folder holds, several devices per job and, without a validation split, what needs one (each job checks its
    own swept values again).
    At its end: write and print its results table; exit with status 1 unless every job finished."""

    def __init__(self) -> None:
        self.sweep_dir_lock: int | None = None  # an fd: the callback travels (pickled) to parallel jobs

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # Hydra turns a callback's exceptions into warnings, but lets SystemExit through.
        with exit_on_user_error():
            refuse_several_devices(config)
            check_needs_validation(config, search=config.hydra.sweeper if is_search(config.hydra) else None)
            sweep_dir = Path(config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            self.sweep_dir_lock = lock(sweep_dir, what="sweep")
            refuse_another_sweep(sweep_dir, config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from lit_cifar.report import write_report  # matplotlib only when a sweep ends

        try:
            rows = write_report(Path(config.hydra.sweep.dir))
        finally:
            os.close(self.sweep_dir_lock)
        finished = ("ok", "pruned", "failed") if is_search(config.hydra) else ("ok",)  # a failed trial: a result
        unfinished = [row["job"] for row in rows if row["status"] not in finished]
        if unfinished:
            print(
                f"error: {len(unfinished)} of {len(rows)} jobs did not finish ({', '.join(unfinished)}); "
                "see the status column",
                file=sys.stderr,
            )
            raise SystemExit(1)
