"""Learning-rate schedules that torch does not ship, as LambdaLR factories stepped once per batch."""

from typing import Annotated

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from lit_cifar.run.declared import Range


def warmup_linear(
    optimizer: Optimizer,
    total_steps: int,
    warmup_fraction: Annotated[float, Range(0, 1, high_open=True, words="a fraction in [0, 1)", example="0.2")] = 0.2,
    final_factor: Annotated[float, Range(0, 1, words="a factor in [0, 1]", example="0.05")] = 0.05,
    initial_factor: Annotated[float, Range(0, 1, words="a factor in [0, 1]", example="0.2")] = 0.0,
) -> LambdaLR:
    """The lr factor through three points, linear between them: `initial_factor` at step 0, 1 at step
    ⌊`warmup_fraction` × total_steps⌋, `final_factor` at step total_steps (the end of the last step). At every run
    length this is airbench94's triangle (0.2, 0.23, 0.07): the same rounding of the peak and the same end point,
    so the last step trains at a little above `final_factor`."""
    warmup = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:  # the factor of step 0 … total_steps - 1
        if step < warmup:
            return initial_factor + (1 - initial_factor) * step / warmup
        return 1 - (1 - final_factor) * (step - warmup) / (total_steps - warmup)

    return LambdaLR(optimizer, factor)


def one_cycle(
    optimizer: Optimizer,
    total_steps: int,
    pct_start: Annotated[
        float, Range(0, 1, low_open=True, high_open=True, words="a fraction in (0, 1)", example="0.25")
    ] = 0.25,
) -> OneCycleLR:
    """OneCycleLR peaking at each parameter group's own lr: the optimizer's, in its units and with the norm group's
    scale (one `max_lr` for all groups would undo both). A schedule replanned on resume finds the peak OneCycleLR
    stored in the group, as the group's lr has moved since."""
    peaks = [group.get("max_lr", group["lr"]) for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=pct_start)
