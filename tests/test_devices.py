"""What breaks only on GPU hosts, checked on the CPU: nets whose backward has no deterministic CUDA kernel,
checkpoints written on another GPU, and parallel sweep jobs sharing the GPUs."""

import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import torch
from conftest import REPO, run_cli, tiny_cifar_overrides
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_models import MODEL_CONFIGS, build
from torch import nn

from lit_cifar.models.common import GlobalAvgPool
from lit_cifar.run.errors import UserError
from lit_cifar.sweep.gpu_share import (
    CONTEXT_BYTES,
    MOST_JOBS_PER_GPU,
    auto_jobs_per_gpu,
    job_parts,
    jobs_that_fit,
    measure_job,
)
from lit_cifar.sweep.jobs import job_gpus, jobs_per_gpu, parallel_jobs, parallel_share, take_free_gpu
from lit_cifar.sweep.search import largest_batch_size, search_space

# Their CUDA backward has no deterministic implementation: `trainer.deterministic=true` raises on a GPU.
NONDETERMINISTIC_ON_CUDA = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)


def test_global_avg_pool_gives_adaptive_avg_pool_s_output_and_gradient():
    maps = torch.randn(4, 8, 5, 5, requires_grad=True)
    ours = GlobalAvgPool()(maps)
    (ours * torch.arange(8.0).view(1, 8, 1, 1)).sum().backward()
    ours_grad, maps.grad = maps.grad, None
    theirs = nn.AdaptiveAvgPool2d(1)(maps)
    (theirs * torch.arange(8.0).view(1, 8, 1, 1)).sum().backward()
    assert ours.shape == theirs.shape == (4, 8, 1, 1)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_grad, maps.grad)


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_every_model_trains_under_deterministic_algorithms(config):
    """On the CPU the flag cannot catch the CUDA-only kernels, hence the check on the layers themselves."""
    net = build(config, 3, 32, 10)
    assert not [m for m in net.modules() if isinstance(m, NONDETERMINISTIC_ON_CUDA)]
    torch.use_deterministic_algorithms(True)
    try:
        net(torch.randn(2, 3, 32, 32)).sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)


def test_jobs_at_once_fit_the_gpus_the_jobs_train_on(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert job_gpus(OmegaConf.create({"accelerator": "auto", "devices": 1})) == 3
    assert job_gpus(OmegaConf.create({"accelerator": "gpu", "devices": 1})) == 3
    assert job_gpus(OmegaConf.create({"accelerator": "cpu", "devices": 1})) == 0
    assert job_gpus(OmegaConf.create({"accelerator": "gpu", "devices": [2]})) == 0  # the user placed it
    assert parallel_jobs(-1, n_gpus=3) == 3  # one job per GPU, whatever the cores
    assert parallel_jobs(-2, n_gpus=3) == 2  # all GPUs but one
    assert parallel_jobs(8, n_gpus=3) == 3  # never two jobs on one GPU
    assert parallel_jobs(2, n_gpus=3) == 2
    assert parallel_jobs(2, n_gpus=0) == 2  # on the CPU: as asked
    assert parallel_jobs(-1, n_gpus=0) == (os.cpu_count() or 1)  # one per core
    assert parallel_share(n_jobs=4, n_cpus=16) == 4
    assert parallel_share(n_jobs=3, n_cpus=2) == 1  # never below one thread


def test_concurrent_jobs_each_take_a_free_gpu_and_a_freed_one_is_taken_again(tmp_path):
    n_gpus = 3
    all_started = threading.Barrier(n_gpus)

    def job(_: int) -> tuple[int, int | None]:
        taken = take_free_gpu(tmp_path, n_gpus, job_num=0)
        all_started.wait()  # every job holds its GPU while the others take theirs
        return taken

    with ThreadPoolExecutor(n_gpus) as jobs:
        locks = dict(jobs.map(job, range(n_gpus)))  # {gpu: fd}
    assert sorted(locks) == [0, 1, 2]  # job 0 three times, yet three GPUs
    assert None not in locks.values()

    os.close(locks.pop(1))  # the job on GPU 1 ends
    gpu, locks[1] = take_free_gpu(tmp_path, n_gpus, job_num=0)
    assert gpu == 1 and locks[1] is not None

    assert take_free_gpu(tmp_path, n_gpus, job_num=4) == (1, None)  # all held: job number modulo count, shared
    for fd in locks.values():
        os.close(fd)


def test_four_jobs_share_two_gpus_two_by_two_and_never_a_slot(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parallel_jobs(-1, n_gpus=2, per_gpu=2) == 4  # one job per slot
    assert parallel_jobs(8, n_gpus=2, per_gpu=2) == 4  # never more than the slots
    all_started = threading.Barrier(4)

    def job(_: int) -> tuple[int, int | None]:
        taken = take_free_gpu(tmp_path, n_gpus=2, job_num=0, per_gpu=2)
        all_started.wait()  # every job holds its slot while the others take theirs
        return taken

    with ThreadPoolExecutor(4) as jobs:
        taken = list(jobs.map(job, range(4)))
    assert sorted(gpu for gpu, _ in taken) == [0, 0, 1, 1] and None not in [fd for _, fd in taken]
    held = {os.readlink(f"/proc/self/fd/{fd}") for _, fd in taken}
    assert held == {str(tmp_path / ".gpus" / name) for name in ("0.0", "1.0", "0.1", "1.1")}  # a slot each

    assert take_free_gpu(tmp_path, 2, job_num=5, per_gpu=2) == (1, None)  # all four held: shared
    for _, fd in taken:
        os.close(fd)

    (tmp_path / "next").mkdir()  # one job after another: the first slot of each GPU before a GPU's second
    in_turn = [take_free_gpu(tmp_path / "next", 2, job_num=n, per_gpu=2) for n in range(4)]
    assert [gpu for gpu, _ in in_turn] == [0, 1, 0, 1]
    for _, fd in in_turn:
        os.close(fd)


@pytest.mark.parametrize("value", [0, -1, "max", 1.5, True])
def test_jobs_per_gpu_other_than_a_positive_integer_or_auto_is_a_one_line_error(value):
    with pytest.raises(UserError, match=f"hydra.launcher.jobs_per_gpu={value} must be a positive integer or auto"):
        jobs_per_gpu(OmegaConf.create({"n_jobs": 2, "jobs_per_gpu": value}))


GiB = 2**30


def test_jobs_that_fit_the_free_memory_at_least_one_and_at_most_eight():
    assert jobs_that_fit(free_bytes=20 * GiB, job_bytes=3 * GiB) == 6  # 90% of 20 GiB: 18 GiB, six jobs of 3
    assert jobs_that_fit(free_bytes=1 * GiB, job_bytes=2 * GiB) == 1  # too large for one: still one, as before
    assert jobs_that_fit(free_bytes=80 * GiB, job_bytes=GiB // 2) == MOST_JOBS_PER_GPU


def test_auto_jobs_per_gpu_is_measured_once_per_sweep_and_read_back_by_every_job(tmp_path):
    auto = OmegaConf.create({"n_jobs": -1, "jobs_per_gpu": "auto"})
    measured = []

    def measure(configs: list) -> tuple[int, int]:
        measured.append(configs)
        return 3 * GiB, 20 * GiB  # a job, and the free memory

    configs = [OmegaConf.create({"data": {"batch_size": 512}})]
    assert jobs_per_gpu(auto, n_gpus=0, sweep_dir=tmp_path, configs=lambda: configs) == 1  # no GPU: nothing to share
    assert auto_jobs_per_gpu(configs, tmp_path, measure=measure) == 6  # the launcher, before the jobs start
    assert measured == [configs] and (tmp_path / ".gpus" / "jobs_per_gpu").read_text() == "6"
    # the jobs and the search's later batches: the same number, not measured again (no GPU here to measure on)
    assert jobs_per_gpu(auto, n_gpus=2, sweep_dir=tmp_path, configs=lambda: configs) == 6
    assert parallel_jobs(-1, n_gpus=2, per_gpu=6) == 12 and len(measured) == 1


def test_a_rerun_of_a_sweep_measures_its_jobs_again(cifar_root, tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / ".gpus").mkdir(parents=True)
    (sweep / ".gpus" / "jobs_per_gpu").write_text("6")  # kept by an earlier run of the sweep, for other jobs
    proc = run_cli(
        "lit_cifar.train", "-m", "model=two_layer_fc", "model.hidden=8", "trainer.max_epochs=1", "seed=0",
        *tiny_cifar_overrides(cifar_root), f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (sweep / ".gpus" / "jobs_per_gpu").exists()


def test_a_job_is_measured_by_its_data_net_optimizer_and_precision_alone():
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=week11_cnn", "data.batch_size=512", "optim=sgd"])
    parts = job_parts(cfg)  # no run dir or Hydra value, which resolve only in a job
    assert set(parts) == {"data", "model", "optim", "precision"}
    resolved = OmegaConf.to_container(OmegaConf.create(parts), resolve=True)
    assert resolved["model"]["num_classes"] == 10 and resolved["optim"]["batch_size"] == 512


@pytest.mark.parametrize(
    "recipe", [["model=week11_cnn"], ["experiment=fast94", "optim=muon"]], ids=["loader", "batched"]
)
def test_a_job_is_measured_by_two_real_training_steps(cifar_root, monkeypatch, recipe):
    # The measurement's own code on the CPU; the GPU's memory figures are faked (tests/test_gpu.py has the real ones).
    peaks = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (20 * GiB, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: peaks.append(device) or GiB)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: None)
    data = [f"data.root={cifar_root}", "data.download=false", "data.verify_checksums=false", "data.val_size=20"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*recipe, *data, "data.batch_size=16"])
    job, free = measure_job(job_parts(cfg), device="cpu")
    assert (job, free) == (GiB + CONTEXT_BYTES, 20 * GiB + CONTEXT_BYTES) and peaks == [torch.device("cpu")]


def test_a_search_measures_a_trial_at_the_largest_batch_size_it_may_propose():
    space, _ = search_space({}, ["data.batch_size=choice(128,512,256)", "optim.lr=interval(1e-4,1e-2)"])
    assert largest_batch_size(space) == 512
    assert largest_batch_size(search_space({}, ["data.batch_size=range(64,1024,step=64)"])[0]) == 1024 - 64
    assert largest_batch_size(search_space({}, ["optim.lr=interval(1e-4,1e-2)"])[0]) is None


@contextmanager
def saved_as_on(location: str) -> Iterator[None]:
    """`torch.save` files every storage under `location` (e.g. cuda:1), as a job training on that GPU does."""
    entry = (0, lambda _: location, lambda storage, saved_location: None)
    torch.serialization.register_package(*entry)
    try:
        yield
    finally:
        torch.serialization._package_registry.remove(entry)  # register_package has no undo


@pytest.mark.slow
def test_a_checkpoint_saved_on_another_gpu_resumes_here(trained_run, tmp_path):
    """A sweep job trained on cuda:1 goes on where that GPU is not (here: no GPU at all)."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)  # left as it is for the other tests
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    with saved_as_on("cuda:1"):
        torch.save(checkpoint, last)
    with pytest.raises(RuntimeError, match="CUDA"):  # what a load that keeps the saved locations meets
        torch.load(last, weights_only=True)

    args = [*tiny_cifar_overrides(trained_run.parent / "data"), "model=week11_cnn", f"hydra.run.dir={run_dir}"]
    resumed = run_cli("lit_cifar.train", *args, "trainer.max_epochs=2", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    second = torch.load(run_dir / "checkpoints" / "epoch_002.ckpt", weights_only=True)
    assert second["global_step"] == 2 * torch.load(run_dir / "checkpoints" / "epoch_001.ckpt")["global_step"]
