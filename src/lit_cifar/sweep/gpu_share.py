"""`hydra.launcher.jobs_per_gpu=auto`: as many jobs on each GPU as its free memory holds, from the memory one job
of the sweep was measured to take. Decided once per sweep, before its jobs start, and kept in the sweep dir
(`.gpus/jobs_per_gpu`), so the launcher, the Optuna sweeper's batches and every job read the same number."""

import logging
import math
import multiprocessing
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# What a job's process holds on a GPU outside torch's allocator (the CUDA context, cuDNN and cuBLAS handles): a few
# hundred MiB; taken on the high side, so that an estimate errs towards fewer jobs (not measured here: no GPU).
CONTEXT_BYTES = 600 * 2**20
# Small nets share a GPU's compute too, so past some number of jobs a GPU trains no more trials per minute; where,
# bench figure 7 measures on a GPU (not yet run). A cap until it has.
MOST_JOBS_PER_GPU = 8
CACHE = Path(".gpus") / "jobs_per_gpu"


def jobs_that_fit(free_bytes: int, job_bytes: int, most: int = MOST_JOBS_PER_GPU) -> int:
    """Jobs of `job_bytes` each (their context included) in 90% of `free_bytes`, at least 1 and at most `most`."""
    return max(1, min(most, math.floor(0.9 * free_bytes / max(1, job_bytes))))


def job_parts(cfg: DictConfig) -> dict:
    """What a job's memory depends on, as plain values: its data, net, optimizer and precision (not the rest of its
    config, whose run dir and Hydra values resolve only in the job itself)."""
    return {
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "model": OmegaConf.to_container(cfg.model),  # ${data.…} resolved against the data above
        "optim": OmegaConf.to_container(cfg.optim),
        "precision": str(cfg.trainer.precision),
    }


def measure_job(parts: dict, device: str = "cuda:0") -> tuple[int, int]:
    """(bytes one job takes on GPU 0, bytes free there for the jobs) for a job's `job_parts`: the peak of torch's
    allocator over two training steps of its net at its batch size and precision, with the images its datamodule
    keeps on the GPU (data.pipeline=batched: every split) and its batch's augmentation, plus a
    context; free memory as seen before this process took any. Run in a process of its own (`measured`), which
    gives all of it back when it ends."""
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate

    cfg = OmegaConf.create(parts)
    datamodule = instantiate(cfg.data)
    if cfg.data.num_classes is None:  # the data decides it, as at a run's start
        cfg.data.num_classes = datamodule.count_classes()
    device = torch.device(device)
    free_before, _ = torch.cuda.mem_get_info(device)  # after this process's own context: that is added back below
    data = cfg.data
    if data.get("pipeline") == "batched":
        datamodule.setup("fit")
        splits = (datamodule.train_set, datamodule.val_set, datamodule.test_set)
        for split in {id(split): split for split in splits if split is not None}.values():
            split.images, split.labels = split.images.to(device), split.labels.to(device)
        images, labels = next(iter(datamodule.train_dataloader()))
        images = datamodule.normalize(datamodule.augment(images, step=0))  # as a training step has it
    else:
        images = torch.randn(data.batch_size, data.in_channels, data.image_size, data.image_size, device=device)
        labels = torch.randint(0, data.num_classes, (data.batch_size,), device=device)
    net = instantiate(cfg.model).to(device, memory_format=torch.channels_last)
    optimizer = instantiate(cfg.optim)(net)
    for _ in range(2):  # the second step holds the optimizer's state as every later one does
        with torch.autocast(device.type, torch.bfloat16, enabled=cfg.precision.startswith("bf16")):
            loss = F.cross_entropy(net(images.contiguous(memory_format=torch.channels_last)), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) + CONTEXT_BYTES, free_before + CONTEXT_BYTES


def measured(configs: list[DictConfig]) -> tuple[int, int]:
    """`measure_job` of each distinct job in a fresh process: the largest job, and the free memory."""
    distinct = {repr(parts): parts for parts in map(job_parts, configs)}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        results = [pool.apply(measure_job, (parts,)) for parts in distinct.values()]
    return max(job for job, _ in results), min(free for _, free in results)


def forget_measured(sweep_dir: Path) -> None:
    """At a sweep's start: a re-run or an extension may hold other jobs than the number kept was measured for."""
    (sweep_dir / CACHE).unlink(missing_ok=True)


def auto_jobs_per_gpu(configs: list[DictConfig], sweep_dir: Path, measure=measured) -> int:
    """The number of jobs per GPU for `configs` (the sweep's jobs, or one config per size of job a search may
    propose), measured by the first caller of a sweep's run and read back from the sweep dir by every later one."""
    cache = sweep_dir / CACHE
    if cache.is_file():
        return int(cache.read_text())
    job_bytes, free_bytes = measure(configs)
    per_gpu = jobs_that_fit(free_bytes, job_bytes)
    log.info(
        "hydra.launcher.jobs_per_gpu=auto: %d jobs per GPU (a job takes %.2f GiB, %.1f GiB free)",
        per_gpu, job_bytes / 2**30, free_bytes / 2**30,
    )  # fmt: skip
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(str(per_gpu))
    return per_gpu
