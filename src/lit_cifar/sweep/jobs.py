"""A sweep's jobs on one machine: no job trains on several devices, parallel jobs share the cores, and each
takes a GPU slot no other job of the sweep holds (`hydra.launcher.jobs_per_gpu` slots on each GPU, or `auto`: the
seeds' small nets leave most of a GPU idle); a job that a launcher lost is recorded as failed. `prepare_job` is what
lit_cifar.train asks of this module: the steps a sweep job takes before it builds its trainer."""

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lit_cifar.run.dirs import in_use
from lit_cifar.run.errors import UserError
from lit_cifar.run.mode import in_multirun
from lit_cifar.run.record import has_outcome, record_failed
from lit_cifar.sweep.overrides import job_name
from lit_cifar.sweep.search import trial_callbacks

log = logging.getLogger(__name__)


def record_lost_job(hydra_cfg: DictConfig, job_num: int, overrides: list[str], reason: str) -> None:
    """For a launcher: a job that ended without recording its outcome (its process killed, its cluster job
    cancelled) gets `metrics.json` with status `failed` and `reason`, so the sweep's table shows it and
    `rerun_failed=true` resumes it. A job that died before claiming its folder stays pending; one that had
    recorded its outcome keeps it."""
    job_dir = Path(hydra_cfg.sweep.dir) / job_name(hydra_cfg, overrides, job_num)
    log.error("job %s: %s", job_dir.name, reason)
    if job_dir.is_dir() and not in_use(job_dir) and not has_outcome(job_dir):
        record_failed(job_dir, reason)


def finished_outcome(config: DictConfig, job: DictConfig, overrides: list[str], job_num: int) -> dict | None:
    """For a sweeper, before it launches a job: the outcome in the job's folder when the job would find nothing left
    to train there (lit_cifar.run.resume.plan_start decides, as in the job itself), so that its process need not
    start; None when the job has work to do, or its start would be refused (the job then says why). `config`: the
    sweep's; `job`: the job's config as a launcher composes it (changed here)."""
    from omegaconf import open_dict

    from lit_cifar.run.resume import plan_start

    folder = Path(config.hydra.sweep.dir) / job_name(config.hydra, overrides, job_num)
    if not has_outcome(folder) or in_use(folder):
        return None
    with open_dict(job):
        job.hydra.job.num = job.hydra.job.id = job_num
    hydra = HydraConfig.instance()
    sweep = hydra.cfg
    hydra.set_config(job)  # the job's own resolvers read it (its folder and log names)
    try:
        with open_dict(job):
            del job["hydra"]
        return plan_start(job, folder, new=False, sweep_job=True).finished
    except UserError:
        return None
    finally:
        hydra.cfg = sweep


def prepare_job(cfg: DictConfig) -> list:
    """A sweep job's steps before its trainer is built (none for a single run): refuse several devices, share the
    machine with the sweep's other jobs (which may set `cfg.trainer.devices`), and return the callbacks the job adds
    (a search trial's report)."""
    if not in_multirun():
        return []
    refuse_several_devices(cfg)
    share_machine(cfg)
    return trial_callbacks(cfg.optimized_metric)


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


def jobs_per_gpu(
    launcher: DictConfig,
    n_gpus: int = 0,
    sweep_dir: Path | None = None,
    configs: Callable[[], list[DictConfig]] = list,
) -> int:
    """`hydra.launcher.jobs_per_gpu` (hydra/launcher=parallel): how many jobs share one GPU; 1 for other launchers.
    `auto`: as many as the free memory of the `n_gpus` GPUs holds, measured for the jobs' `configs` once per sweep
    (lit_cifar.sweep.gpu_share); 1 where the jobs train on no GPU. A value that is neither is one line."""
    per_gpu = launcher.get("jobs_per_gpu", 1)
    if per_gpu == "auto":
        if not n_gpus or sweep_dir is None:
            return 1
        from lit_cifar.sweep.gpu_share import auto_jobs_per_gpu

        return auto_jobs_per_gpu(configs(), sweep_dir)
    if not isinstance(per_gpu, int) or isinstance(per_gpu, bool) or per_gpu < 1:
        raise UserError(
            f"hydra.launcher.jobs_per_gpu={per_gpu} must be a positive integer or auto: how many jobs share a GPU, "
            "e.g. 2"
        )
    return per_gpu


def parallel_jobs(n_jobs: int, n_gpus: int = 0, per_gpu: int = 1) -> int:
    """How many jobs run at once for joblib's `n_jobs` (-1: one per core, -2: all cores but one, …). Jobs that
    train on `n_gpus` GPUs count GPU slots (`per_gpu` on each) instead of cores (-1: one job per slot), never
    more jobs than slots."""
    units = n_gpus * per_gpu or os.cpu_count() or 1
    at_once = n_jobs if n_jobs > 0 else max(1, units + 1 + n_jobs)
    return min(at_once, n_gpus * per_gpu) if n_gpus else at_once


def take_free_gpu(sweep_dir: Path, n_gpus: int, job_num: int, per_gpu: int = 1) -> tuple[int, int | None]:
    """The GPU of the first of its `per_gpu` slots on each of `n_gpus` GPUs that no other job of the sweep holds,
    the first slots of every GPU before the second ones, and the fd whose lock (`flock` on `.gpus/<index>.<slot>`
    in the sweep dir) holds it until closed; the kernel lets go of a killed job's lock. When all are held (more
    jobs at once than slots, as the joblib launcher may run), GPU job_num modulo count, shared, and no fd."""
    folder = sweep_dir / ".gpus"
    folder.mkdir(exist_ok=True)
    for slot in range(per_gpu):
        for index in range(n_gpus):
            fd = os.open(folder / f"{index}.{slot}", os.O_CREAT | os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return index, fd
    log.warning(
        "all %d slots of %d GPUs are held by other jobs of this sweep: this one shares GPU %d; run at most "
        "hydra.launcher.jobs_per_gpu jobs per GPU (hydra/launcher=parallel does)",
        n_gpus * per_gpu,
        n_gpus,
        job_num % n_gpus,
    )
    return job_num % n_gpus, None


# The lock on this process's GPU (take_free_gpu). A job of the parallel launcher holds it for its whole process;
# a joblib worker that runs several jobs lets it go when its next job takes a GPU.
_held_gpu: int | None = None


def share_machine(cfg: DictConfig) -> None:
    """Under the parallel (or joblib) launcher, keep parallel jobs from oversubscribing the cores, and give a job
    that asks for the default single device a GPU slot that no other job of the sweep holds."""
    global _held_gpu
    hydra_cfg = HydraConfig.get()
    if "n_jobs" not in hydra_cfg.launcher:
        return
    import torch

    n_gpus = job_gpus(cfg.trainer)
    per_gpu = jobs_per_gpu(hydra_cfg.launcher, n_gpus, Path(hydra_cfg.sweep.dir), lambda: [cfg])
    threads = parallel_share(parallel_jobs(hydra_cfg.launcher.n_jobs, n_gpus, per_gpu), os.cpu_count() or 1)
    torch.set_num_threads(threads)
    if n_gpus:
        if _held_gpu is not None:
            os.close(_held_gpu)
        gpu, _held_gpu = take_free_gpu(Path(hydra_cfg.sweep.dir), n_gpus, hydra_cfg.job.num, per_gpu)
        cfg.trainer.devices = [gpu]
    log.info("parallel job: %d threads, devices=%s", threads, cfg.trainer.devices)


@contextmanager
def workers_of(launcher) -> Iterator[None]:
    """A sweep's time with its launcher: the workers a launcher keeps warm between its launches (the parallel
    launcher's: a search launches a batch of trials at a time) end with it."""
    try:
        yield
    finally:
        if hasattr(launcher, "end_workers"):
            launcher.end_workers()
