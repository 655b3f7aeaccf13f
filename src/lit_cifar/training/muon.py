"""Muon on the conv filters and another optimizer on the rest of the net, stepped as one optimizer: airbench94_muon's
split (`optim.muon`, built by `lit_cifar.training.optim.build_optimizer`; experiment=fast94_muon)."""

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer


def _row_order(weight: Tensor) -> tuple[int, ...]:
    """The order of `weight`'s dimensions in which its memory is one row per output: (0, 1, 2, 3) for a contiguous
    filter, (0, 2, 3, 1) for a channels_last one."""
    for order in (tuple(range(weight.ndim)), (0, *range(2, weight.ndim), 1)):
        if weight.permute(order).is_contiguous():
            return order
    raise ValueError(f"a weight of shape {tuple(weight.shape)} and strides {weight.stride()} is no matrix of rows")


class FilterMuon(torch.optim.Muon):
    """torch.optim.Muon over weights of two or more dimensions: each is stepped as the matrix of its rows (a filter
    out × in × k × k as out × in·k·k), a view in the order its memory holds it. The order is free: orthogonalising a
    matrix commutes with permuting its columns, so the step is the same in any order.

    With `normalize_weights` each weight is rescaled to norm √(rows) before its step (airbench94_muon), so Muon's
    step, whose size the lr fixes, stays the same share of the weight throughout training."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        normalize_weights: bool = False,
        weight_decay: float = 0.0,  # torch's default is 0.1
        **options: Any,
    ) -> None:
        self.weights = list(params)
        self.orders = [_row_order(weight) for weight in self.weights]
        with torch.no_grad():  # views of the parameters that share their memory and are leaves, as torch requires
            self.matrices = [w.permute(order).flatten(1) for w, order in zip(self.weights, self.orders, strict=True)]
        super().__init__([{"params": self.matrices, "name": "muon"}], weight_decay=weight_decay, **options)
        self.normalize_weights = normalize_weights

    def zero_grad(self, set_to_none: bool = True) -> None:
        for weight in self.weights:
            if set_to_none:
                weight.grad = None
            elif weight.grad is not None:
                weight.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for weight, order, matrix in zip(self.weights, self.orders, self.matrices, strict=True):
            matrix.grad = None if weight.grad is None else weight.grad.permute(order).reshape(matrix.shape)
            if self.normalize_weights:
                matrix.mul_(len(matrix) ** 0.5 / matrix.norm())
        super().step()
        return loss


class OptimizerChain(Optimizer):
    """Optimizers over disjoint parameters, stepped as one: Lightning's automatic optimization takes one optimizer,
    and one lr scheduler then sets the lr of every group (this chain's groups are theirs, in order)."""

    def __init__(self, *optimizers: Optimizer) -> None:  # holds no parameters of its own: no Optimizer.__init__
        self.optimizers = optimizers
        self.defaults: dict = {}

    @property
    def param_groups(self) -> list[dict]:  # read afresh: load_state_dict replaces an optimizer's group list
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    @property
    def state(self) -> dict:
        return {param: state for optimizer in self.optimizers for param, state in optimizer.state.items()}

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict) -> None:
        for optimizer, state in zip(self.optimizers, state_dict["optimizers"], strict=True):
            optimizer.load_state_dict(state)
