"""Learning-rate schedules that torch does not ship, as LambdaLR factories stepped once per batch."""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from lit_cifar.run.errors import UserError


def warmup_linear(
    optimizer: Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.2,
    final_factor: float = 0.05,
    initial_factor: float = 0.0,
) -> LambdaLR:
    """Linear warm-up from `initial_factor`× the optimizer's lr to that lr over `warmup_fraction` of the run,
    then linear decay to `final_factor`× that lr at the last step (airbench94's triangle: 0.2, 0.23, 0.07)."""
    if not 0 <= warmup_fraction < 1:
        raise UserError(f"scheduler.warmup_fraction={warmup_fraction} must be in [0, 1), e.g. 0.2")
    warmup = round(warmup_fraction * total_steps)

    def factor(step: int) -> float:  # step 0 … total_steps - 1
        if step < warmup:
            return initial_factor + (1 - initial_factor) * step / warmup
        return 1 - (1 - final_factor) * (step - warmup) / max(1, total_steps - 1 - warmup)

    return LambdaLR(optimizer, factor)


def one_cycle(optimizer: Optimizer, total_steps: int, pct_start: float = 0.25) -> OneCycleLR:
    """OneCycleLR peaking at each parameter group's own lr: the optimizer's, in its units and with the norm group's
    scale (one `max_lr` for all groups would undo both). A schedule replanned on resume finds the peak OneCycleLR
    stored in the group, as the group's lr has moved since."""
    peaks = [group.get("max_lr", group["lr"]) for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=pct_start)
