"""The `${lit_cifar.…}` resolvers that conf/ uses, registered here only; every command calls `register()` as
it is imported (a SLURM or parallel job imports the command to unpickle its task, and so registers them too)."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from lit_cifar.run.dirs import claim_new_dir, evaluations_dir, this_run_dir
from lit_cifar.run.mode import in_multirun
from lit_cifar.run.overrides import as_typed
from lit_cifar.sweep.overrides import job_name


def _log_root() -> str:
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.sweep.dir if in_multirun() else this_run_dir()


def _job_name() -> str:
    """A sweep job's folder (hydra.sweep.subdir), unless its overrides set one (a confirmation job)."""
    hydra_cfg = HydraConfig.get()
    if OmegaConf.is_missing(hydra_cfg.job, "num"):  # a config printed with --cfg job --resolve: no job yet
        return "<job name>"
    return job_name(hydra_cfg, as_typed(hydra_cfg.overrides.task), hydra_cfg.job.num)


def _console_prefix() -> str:
    """`[optim.lr=0.002] ` before each console line of a sweep job (a logging format: `%` doubled); none for a
    single run."""
    return f"[{HydraConfig.get().sweep.subdir}] ".replace("%", "%%") if in_multirun() else ""


def _run_name() -> str:
    """What loggers name a run: a sweep job's folder name; empty for a single run."""
    return str(HydraConfig.get().sweep.subdir) if in_multirun() else ""


def register() -> None:
    # `claim` is cached in the config like Hydra's `now`, and the cache travels with the config to sweep jobs,
    # so a folder is claimed once per start.
    OmegaConf.register_new_resolver("lit_cifar.claim", claim_new_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("lit_cifar.run_dir", this_run_dir, replace=True)
    # conf/logger/*.yaml: a single run logs into its run dir; the jobs of a sweep log side by side under the
    # sweep dir, each named by its overrides.
    OmegaConf.register_new_resolver("lit_cifar.log_root", _log_root, replace=True)
    OmegaConf.register_new_resolver("lit_cifar.job_name", _job_name, replace=True)  # conf/hydra/default.yaml
    OmegaConf.register_new_resolver("lit_cifar.run_name", _run_name, replace=True)
    OmegaConf.register_new_resolver("lit_cifar.console_prefix", _console_prefix, replace=True)
    OmegaConf.register_new_resolver("lit_cifar.evaluations_dir", evaluations_dir, replace=True)  # conf/evaluate.yaml
