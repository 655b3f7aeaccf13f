"""The `${lit_cifar.…}` resolvers that conf/ uses, registered here only; every command calls `register()` as
it is imported (a SLURM or parallel job imports the command to unpickle its task, and so registers them too)."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from lit_cifar.run.dirs import claim_new_dir, evaluations_dir, this_run_dir
from lit_cifar.run.lifecycle import in_multirun
from lit_cifar.run.overrides import as_typed
from lit_cifar.sweep.overrides import job_name


def _log_root() -> str:
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.sweep.dir if in_multirun() else this_run_dir()


def _run_name() -> str:
    if not in_multirun():
        return ""
    hydra_cfg = HydraConfig.get()
    if OmegaConf.is_missing(hydra_cfg.job, "num"):  # a config printed with --cfg job --resolve: no job yet
        return "<job name>"
    return job_name(hydra_cfg, as_typed(hydra_cfg.overrides.task), hydra_cfg.job.num)


def register() -> None:
    # `claim` is cached in the config like Hydra's `now`, and the cache travels with the config to sweep jobs,
    # so a folder is claimed once per start.
    OmegaConf.register_new_resolver("lit_cifar.claim", claim_new_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("lit_cifar.run_dir", this_run_dir, replace=True)
    # conf/logger/*.yaml: a single run logs into its run dir; the jobs of a sweep log side by side under the
    # sweep dir, each named by its overrides.
    OmegaConf.register_new_resolver("lit_cifar.log_root", _log_root, replace=True)
    OmegaConf.register_new_resolver("lit_cifar.run_name", _run_name, replace=True)
    OmegaConf.register_new_resolver("lit_cifar.evaluations_dir", evaluations_dir, replace=True)  # conf/evaluate.yaml
