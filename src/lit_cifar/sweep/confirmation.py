"""How a sweep job knows it is a confirmation job (lit_cifar.reporting.confirm): its own overrides name its
folder, where the sweep's jobs get theirs from their swept values or trial number."""

from lit_cifar.run.overrides import overrides_of

SUBDIR = "hydra.sweep.subdir"


def confirmation_name(overrides: list[str]) -> str | None:
    """The folder a confirmation job's overrides name for it; None for the sweep's own jobs."""
    return overrides_of([line for line in overrides if line.startswith(f"{SUBDIR}=")]).get(SUBDIR)
