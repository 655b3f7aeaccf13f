"""Whether this process runs a sweep's job: the folder key a message names, a job's own steps."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
