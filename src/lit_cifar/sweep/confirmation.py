"""The confirmation stage's settings and marks, which the sweep's own code needs (lit_cifar.reporting.confirm runs
the stage): its two keys, checked before a sweep starts, and how a job knows it is a confirmation job (its own
overrides name its folder, where the sweep's jobs get theirs from their swept values or trial number)."""

from omegaconf import DictConfig

from lit_cifar.run.errors import UserError
from lit_cifar.run.overrides import parse

SUBDIR = "hydra.sweep.subdir"
# Given for one run of the sweep's command (by `rerun --top/--seeds`), never replayed by its re-run command.
KEYS = ("hydra.sweeper.confirm.top", "hydra.sweeper.confirm.seeds")


def confirmation_name(overrides: list[str]) -> str | None:
    """The folder a confirmation job's overrides name for it (unquoted, as Hydra reads it); None for the sweep's own
    jobs."""
    named = [o.value() for o in parse([line for line in overrides if line.startswith(f"{SUBDIR}=")])]
    return named[-1] if named else None


def check_confirmation(sweeper: DictConfig, task: list[str]) -> None:
    """Before any job: `confirm.top` an integer >= 0 (0: no confirmation) and `confirm.seeds` one >= 1, and, when it
    confirms, a seed that the sweep lists (`task`: its override lines), so that new seeds are known."""
    confirm = sweeper.get("confirm")
    if confirm is None:
        return
    top, seeds = confirm.get("top"), confirm.get("seeds")
    for key, value, least in (("top", top, 0), ("seeds", seeds, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UserError(
                f"hydra.sweeper.confirm.{key}={value} must be an integer >= {least}: how many "
                + ("of the best settings to confirm (0: none), e.g. 2" if key == "top" else "new seeds each, e.g. 2")
            )
    searched = [o for o in parse(task) if o.key_or_group == "seed" and o.is_sweep_override()]
    if top and searched and not searched[-1].is_discrete_sweep():
        raise UserError(
            f"seed is searched ({searched[-1].input_line}); a confirmation needs seeds none of the trials used: "
            "search other keys, or confirm with hydra.sweeper.confirm.top=0"
        )
