"""`hydra/launcher=slurm`: a sweep's jobs as one SLURM job array, with hydra-submitit-launcher's settings and
its way of re-queueing a job (submitit's USR2 handler) before its time limit or on pre-emption.

Two things differ from the plugin's own SlurmLauncher. A job that SLURM ends without a result (scancel, out of
memory, node failure, a time-out past max_num_timeout) made it raise at that job and end the sweep without its
table, though the other jobs went on; here that job fails alone, recorded like a dead job of
hydra/launcher=parallel, and the sweep ends with its table. A job array that SLURM refuses (more CPUs, memory or
GPUs than a node of the partition has) ends in one `error:` line instead of submitit's traceback."""

import contextlib
import io
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit
        from submitit.core.utils import FailedJobError, UncompletedJobError

        from lit_cifar.run.errors import UserError, exit_on_user_error
        from lit_cifar.sweep.jobs import record_lost_job

        if shutil.which("sbatch") is None:  # submitit's own words for it are a traceback
            with exit_on_user_error():
                raise UserError(
                    "hydra/launcher=slurm needs SLURM's sbatch on this machine's PATH; run the sweep on the cluster's "
                    "login node, or leave hydra/launcher=slurm out to run it here"
                )
        params = dict(self.params)
        executor = submitit.AutoExecutor(
            folder=params.pop("submitit_folder"), cluster="slurm", slurm_max_num_timeout=params.pop("max_num_timeout")
        )
        common = set(OmegaConf.structured(BaseQueueConf))  # settings every submitit executor takes without prefix
        executor.update_parameters(**{k if k in common else f"slurm_{k}": v for k, v in params.items()})

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info("Submitting %d jobs to SLURM, output in %s", len(job_overrides), sweep_dir)
        calls = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
            calls.append((list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state()))

        refusal = io.StringIO()  # submitit prints sbatch's error lines itself before raising them
        with exit_on_user_error():
            try:
                with contextlib.redirect_stderr(refusal):
                    jobs = executor.map_array(self, *zip(*calls, strict=True))
            except FailedJobError as err:
                lines = [line.removeprefix("sbatch: error: ") for line in str(err).splitlines() if line.strip()]
                raise UserError(
                    f"SLURM refused the sweep's jobs ({'; '.join(lines)}); check hydra.launcher.partition, "
                    "cpus_per_task, mem_gb and gpus_per_node against the partition's nodes (sinfo -N -o '%P %c %m %G')"
                ) from None

        returns = []
        for job, (overrides, _, num, *_) in zip(jobs, calls, strict=True):
            try:
                returns.append(job.results()[0])
            except (UncompletedJobError, FailedJobError):
                reason = (
                    f"SLURM job {job.job_id} ended {job.state} without a result (cancelled, out of memory, "
                    f"or timed out more than max_num_timeout times; its log: {job.paths.stderr}); re-run the sweep "
                    "with rerun_failed=true to resume it from its last finished epoch"
                )
                record_lost_job(self.config.hydra, num, overrides, reason)
                # Completed as far as Hydra is concerned: the sweep goes on, and its table shows the failure.
                returns.append(JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None))
        return returns
