"""The optimizer of `conf/optim/*.yaml`: any torch optimizer class, with the parameters of normalization layers in
their own group (`norm_lr_scale`), and the lr and weight decay in torch's units or in airbench's decoupled ones."""

from pydoc import locate
from typing import Annotated

from torch import nn
from torch.optim import SGD, Optimizer

from lit_cifar.run.declared import KeysOf, OneOf, Range
from lit_cifar.run.errors import UserError
from lit_cifar.training.muon import FilterMuon, OptimizerChain

# Found by type, as torchvision's classification reference finds them (`set_weight_decay`).
NORM_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
)


def examples_per_kilostep(momentum: float) -> float:
    """airbench's unit of time for lr and weight decay: 1024 examples, times its (Nesterov) momentum gain
    1 + 1/(1 - momentum), the factor by which momentum lengthens steps of a constant gradient."""
    return 1024 * (1 + 1 / (1 - momentum))


def build_optimizer(
    net: nn.Module,
    *,
    algorithm: str,
    lr: Annotated[float, Range(0, low_open=True, words="a positive number", example="optim.lr=1e-3")],
    weight_decay: Annotated[float, Range(0, words="a number ≥ 0", example="optim.weight_decay=5e-4")] = 0.0,
    norm_lr_scale: Annotated[float, Range(0, low_open=True, words="a positive factor", example="64")] = 1.0,
    units: Annotated[str, OneOf("torch", "per_1024", words="one of torch, per_1024", example="torch")] = "torch",
    batch_size: int | None = None,
    norm_group: Annotated[str, OneOf("layers", "vectors", words="one of layers, vectors", example="layers")] = "layers",
    muon: Annotated[dict | None, KeysOf("lit_cifar.training.muon.FilterMuon")] = None,
    **options,
) -> Optimizer:
    """`algorithm` (a dotted class path such as torch.optim.SGD) over the trainable parameters of `net`; with `muon`
    (FilterMuon's options: lr, momentum, nesterov, ns_steps, normalize_weights), the conv filters are Muon's and
    `algorithm` steps the rest, both as one optimizer (airbench94_muon's split; `lit_cifar.training.muon`).

    `norm_lr_scale` multiplies the lr of the norm group (`norm_group`: `layers`, the normalization layers'
    parameters; `vectors`, every one-dimensional parameter, biases included) and divides its weight decay, so that
    its decay per step (lr × weight_decay) stays the others'. airbench94 gives BatchNorm biases 64×, airbench94_muon
    every bias 0.08×.

    `units`: `torch` — lr and weight_decay are the optimizer's own, for our mean-reduced loss. `per_1024` (SGD only,
    airbench's form) — lr is the step per 1024 examples, decoupled from momentum and batch size, and weight_decay
    the decay per 1024 examples, decoupled from the lr; converted here with `batch_size` to torch's units."""
    optimizer_class = locate(algorithm)
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
        raise UserError(f"optim.algorithm={algorithm} is not a torch optimizer class, e.g. torch.optim.SGD")
    if units == "per_1024":
        if not issubclass(optimizer_class, SGD):
            raise UserError(
                f"optim.units=per_1024 is defined for SGD, not optim.algorithm={algorithm}; "
                "use optim=sgd or optim.units=torch"
            )
        if batch_size is None:
            raise UserError("optim.units=per_1024 needs the batch size: optim.batch_size=${data.batch_size}")
        # airbench sums the loss over the batch and steps with lr_1024 / kilostep; our loss is the mean, whose
        # gradient is batch_size times smaller. The decay per step, lr × weight_decay, is airbench's:
        # wd_1024 × batch_size / kilostep.
        lr_1024, wd_1024 = lr, weight_decay
        lr = lr_1024 / examples_per_kilostep(options.get("momentum", 0.0)) * batch_size
        weight_decay = wd_1024 / lr_1024
    if norm_group == "layers":
        norm_params = {id(p) for layer in net.modules() if isinstance(layer, NORM_LAYERS) for p in layer.parameters()}
    else:
        norm_params = {id(p) for p in net.parameters() if p.ndim == 1}
    trainable = [p for p in net.parameters() if p.requires_grad]
    filters = [p for p in trainable if p.ndim == 4] if muon is not None else []
    net_name = type(getattr(net, "net", net)).__name__  # the LightningModule's net, or a bare one
    if muon is not None and not filters:
        raise UserError(f"optim.muon steps conv filters, and the net {net_name} has none; add ~optim.muon")
    trainable = [p for p in trainable if p.ndim != 4] if filters else trainable
    main = [p for p in trainable if id(p) not in norm_params]
    norm = [p for p in trainable if id(p) in norm_params]
    if norm_lr_scale == 1 or not norm:
        optimizer = optimizer_class(trainable, lr=lr, weight_decay=weight_decay, **options)
    else:
        groups = [
            {"params": main, "name": "main"},
            {"params": norm, "name": "norm", "lr": lr * norm_lr_scale, "weight_decay": weight_decay / norm_lr_scale},
        ]
        optimizer = optimizer_class(groups, lr=lr, weight_decay=weight_decay, **options)
    return optimizer if muon is None else OptimizerChain(optimizer, FilterMuon(filters, **muon))
