"""The optimizer of `conf/optim/*.yaml`: any torch optimizer class, with the parameters of normalization layers in
their own group (`norm_lr_scale`), and the lr and weight decay in torch's units or in airbench's decoupled ones."""

from pydoc import locate

from torch import nn
from torch.optim import SGD, Optimizer

from lit_cifar.run.errors import UserError

# Found by type, as torchvision's classification reference finds them (`set_weight_decay`).
NORM_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
)
UNITS = ("torch", "per_1024")


def examples_per_kilostep(momentum: float) -> float:
    """airbench's unit of time for lr and weight decay: 1024 examples, times its (Nesterov) momentum gain
    1 + 1/(1 - momentum), the factor by which momentum lengthens steps of a constant gradient."""
    return 1024 * (1 + 1 / (1 - momentum))


def build_optimizer(
    net: nn.Module,
    *,
    algorithm: str,
    lr: float,
    weight_decay: float = 0.0,
    norm_lr_scale: float = 1.0,
    units: str = "torch",
    batch_size: int | None = None,
    **options,
) -> Optimizer:
    """`algorithm` (a dotted class path such as torch.optim.SGD) over the trainable parameters of `net`.

    `norm_lr_scale` multiplies the lr of the normalization layers' parameters (airbench gives BatchNorm biases 64×)
    and divides their weight decay, so that their decay per step (lr × weight_decay) stays the others'.

    `units`: `torch` — lr and weight_decay are the optimizer's own, for our mean-reduced loss. `per_1024` (SGD only,
    airbench's form) — lr is the step per 1024 examples, decoupled from momentum and batch size, and weight_decay
    the decay per 1024 examples, decoupled from the lr; converted here with `batch_size` to torch's units."""
    optimizer_class = locate(algorithm)
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
        raise UserError(f"optim.algorithm={algorithm} is not a torch optimizer class, e.g. torch.optim.SGD")
    if units not in UNITS:
        raise UserError(f"optim.units={units} must be one of {', '.join(UNITS)}; e.g. optim.units=torch")
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
    norm_params = {id(p) for layer in net.modules() if isinstance(layer, NORM_LAYERS) for p in layer.parameters()}
    trainable = [p for p in net.parameters() if p.requires_grad]
    main = [p for p in trainable if id(p) not in norm_params]
    norm = [p for p in trainable if id(p) in norm_params]
    if norm_lr_scale == 1 or not norm:
        return optimizer_class(trainable, lr=lr, weight_decay=weight_decay, **options)
    groups = [
        {"params": main, "name": "main"},
        {"params": norm, "name": "norm", "lr": lr * norm_lr_scale, "weight_decay": weight_decay / norm_lr_scale},
    ]
    return optimizer_class(groups, lr=lr, weight_decay=weight_decay, **options)
