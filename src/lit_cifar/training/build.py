"""From a config to the objects a run trains with: the datamodule, the module holding the net, the callbacks,
the loggers and the trainer. Lightning is imported here, once a start passed its checks."""

from dataclasses import dataclass

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from lit_cifar.run.config import resolved_config
from lit_cifar.run.errors import UserError
from lit_cifar.run.lifecycle import quiet_console
from lit_cifar.run.validation_split import has_validation


@dataclass
class Built:
    datamodule: pl.LightningDataModule
    module: pl.LightningModule
    trainer: pl.Trainer


def check_input_size(net, in_channels: int, image_size: int, num_classes: int) -> None:
    """Refuse a net that cannot take the data's images, or gives another number of outputs than there are
    classes, with one line now rather than a traceback at the first step."""
    from lit_cifar.models.common import output_of

    shape = tuple(output_of(net, in_channels, image_size).shape)
    if shape != (1, num_classes):
        raise UserError(
            f"model {type(net).__name__} gives {shape[1:]} outputs per image, not data.num_classes={num_classes}; "
            "set num_classes: ${data.num_classes} in its config"
        )


def seeded(cfg: DictConfig) -> None:
    """Lightning's console quiet and every generator seeded (the seed is in metrics.json), before anything is built."""
    quiet_console()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)


def build_data(cfg: DictConfig) -> pl.LightningDataModule:
    return instantiate(cfg.data)


def build_module(cfg: DictConfig) -> pl.LightningModule:
    """The module holding the config's net, refused in one line when the net does not fit the data."""
    module = instantiate(cfg.module)
    check_input_size(module.net, cfg.data.in_channels, cfg.data.image_size, cfg.data.num_classes)
    return module


def build_trainer(cfg: DictConfig, **settings) -> pl.Trainer:
    """The config's trainer, with `settings` (callbacks, loggers, a command's own limits) over its keys."""
    return instantiate(cfg.trainer, **settings)


def build(cfg: DictConfig, extra_callbacks: list[pl.Callback] = ()) -> Built:
    """Seeded, then built in the order the config's facts flow: data, net (checked against the data), trainer."""
    seeded(cfg)
    datamodule = build_data(cfg)
    module = build_module(cfg)
    module.run_config = resolved_config(cfg)  # saved in every checkpoint
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None] + list(extra_callbacks)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]  # logger=[]: none
    no_validation = {} if has_validation(cfg.data.val_size) else {"limit_val_batches": 0}
    # without callbacks.progress_bar, no bar (unless trainer.enable_progress_bar asks for Lightning's own, which
    # writes into pipes and files too)
    bar = any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks) or "enable_progress_bar" in cfg.trainer
    no_bar = {} if bar else {"enable_progress_bar": False}
    trainer = build_trainer(cfg, callbacks=callbacks, logger=loggers, **no_validation, **no_bar)
    return Built(datamodule, module, trainer)
