"""A sweep's jobs on one machine: no job trains on several devices, parallel jobs share the cores, and each
takes a GPU no other job of the sweep holds; a job that a launcher lost is recorded as failed."""

import fcntl
import logging
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lit_cifar.run.dirs import in_use
from lit_cifar.run.errors import UserError
from lit_cifar.run.lifecycle import in_multirun
from lit_cifar.run.record import has_outcome, record_failed
from lit_cifar.sweep.overrides import job_name

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
