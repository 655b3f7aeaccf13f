"""`hydra/launcher=parallel`: sweep jobs side by side on one machine, `n_jobs` worker processes that each run one
job after another, so a job pays for no process start and no imports but its worker's first. The workers stay warm
between launches too (a search launches a batch of trials at a time), until the sweep ends (`end_workers`).
(A Hydra launcher must live in the `hydra_plugins` namespace; Hydra imports this module at every start, so
lit_cifar itself is imported only once jobs are launched.)

Hydra's joblib launcher runs the jobs in one shared loky pool, and loky kills every worker of a pool when
one of them dies: a job killed by hand or by the out-of-memory killer took the jobs beside it down too, and
the sweep ended in a TerminatedWorkerError without its table. Here each worker is a pool of its own: a job's
death fails that job alone (its `metrics.json` says so, and `rerun_failed=true` resumes it from its last finished
epoch), a new worker takes its place, and the others run on."""

import logging
import multiprocessing
import queue
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_joblib_launcher._core import execute_job
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from joblib.externals.loky import ProcessPoolExecutor
from joblib.externals.loky.process_executor import TerminatedWorkerError

log = logging.getLogger(__name__)


def _execute_job(*args) -> JobReturn:
    """Hydra's `execute_job` in a loky worker, with the platform's own start method for the processes the job starts
    (its DataLoader's workers): loky makes its own the worker's default, and a DataLoader cannot start with it. A
    stop (Ctrl-C) reaches the sweep's process too, which tells it."""
    from lit_cifar.run.errors import stops_told_by_the_sweep

    multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
    stops_told_by_the_sweep()
    return execute_job(*args)


class ParallelLauncher(JoblibLauncher):
    """The joblib launcher's `n_jobs`, with one loky worker per job, and no more jobs at once than GPU slots
    (`jobs_per_gpu` on each GPU, or `auto`) when the jobs train on GPUs: each takes a slot no other job holds
    (lit_cifar.sweep.jobs.share_machine)."""

    def __init__(self, n_jobs: int, jobs_per_gpu: int) -> None:
        super().__init__(n_jobs=n_jobs, jobs_per_gpu=jobs_per_gpu)
        self.idle: queue.SimpleQueue = queue.SimpleQueue()  # warm workers; a job that finds none starts one

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from lit_cifar.sweep.jobs import job_gpus, jobs_per_gpu, parallel_jobs

        def configs() -> list:  # the jobs' own configs, for jobs_per_gpu=auto to measure
            loader = self.hydra_context.config_loader
            return [loader.load_sweep_config(self.config, list(overrides)) for overrides in job_overrides]

        n_gpus = job_gpus(self.config.trainer)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        n_jobs = parallel_jobs(
            self.joblib["n_jobs"], n_gpus, jobs_per_gpu(self.config.hydra.launcher, n_gpus, sweep_dir, configs)
        )
        log.info("Launching %d jobs, %d at a time, into %s", len(job_overrides), n_jobs, self.config.hydra.sweep.dir)
        state = Singleton.get_state()
        with ThreadPoolExecutor(n_jobs) as threads:
            runs = [
                threads.submit(self._run, initial_job_idx + n, list(overrides), state)
                for n, overrides in enumerate(job_overrides)
            ]
            try:
                return [run.result() for run in runs]
            except BaseException:  # a stop (Ctrl-C, SIGTERM): no job starts after it (those running end on theirs)
                threads.shutdown(cancel_futures=True)
                self.end_workers()
                raise

    def end_workers(self) -> None:
        while not self.idle.empty():
            self.idle.get().shutdown()

    def _run(self, job_num: int, overrides: list[str], state: dict) -> JobReturn:
        try:
            worker = self.idle.get_nowait()
        except queue.Empty:  # the first job of its slot, or the one after a death
            worker = ProcessPoolExecutor(max_workers=1)
        args = (job_num, overrides, self.hydra_context, self.config, self.task_function, state)
        try:
            done = worker.submit(_execute_job, *args).result()
        except TerminatedWorkerError as death:
            worker.shutdown(wait=False)
            self._record_death(job_num, overrides, death)
            # Completed as far as Hydra is concerned, like a job whose failure the job itself recorded: the sweep
            # goes on, and its table shows the failure.
            return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)
        except BaseException:
            worker.shutdown(wait=False)
            raise
        self.idle.put(worker)
        return done

    def _record_death(self, job_num: int, overrides: list[str], death: TerminatedWorkerError) -> None:
        from lit_cifar.sweep.jobs import record_lost_job

        codes = re.search(r"exit codes of the workers are (\{[^}]*\})", str(death))
        codes = codes.group(1) if codes else "unknown"
        reason = (
            f"its process died (exit code {codes}: killed, or out of memory); "
            "re-run the sweep with rerun_failed=true to resume it from its last finished epoch"
        )
        record_lost_job(self.config.hydra, job_num, overrides, reason)
