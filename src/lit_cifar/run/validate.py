"""The checks a start passes before anything is built or written: every value a user sets, against a
declared range (`RULES`), plus the settings that parse but do nothing (warned, not refused).

Only omegaconf is imported here, so a refused start answers in the time it takes to compose the config.
What only the data can tell (its classes, files, pixels, labels) is checked by the datamodule as it loads."""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.errors import UserError, group_hint
from lit_cifar.run.metrics import METRICS, check_metric, higher_is_better
from lit_cifar.run.overrides import parse

log = logging.getLogger(__name__)

SEED_MAX = 2**32 - 1  # what seed_everything (numpy's global RNG) accepts
HPARAMS_NUMBERS = ("lr", "batch_size", "weight_decay", "label_smoothing", "max_epochs", "seed")  # callbacks.hparams
BEST_KEEPERS = ("model_checkpoint", "early_stopping")  # the callbacks that follow a metric (`monitor`, `mode`)
ABSENT = object()


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    check: Callable[[object], bool]
    allowed: str  # the range in words, as the error states it
    example: str
    nullable: bool = False


def in_range(low: float, high: float, *, low_open: bool = False, high_open: bool = False, ints: bool = False):
    def check(value: object) -> bool:
        if not (integer(value) if ints else number(value)):
            return False
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    return check


def val_size(value: object) -> bool:
    """0 (no validation split), a count of images (1, 2, …) or a fraction of the training images (0 < f < 1)."""
    return (integer(value) and value >= 0) or (isinstance(value, float) and 0 < value < 1)


# Each config key's type, declared here once (tests/test_validate.py holds every key of conf/ and its default to
# it): a start refuses a value of another type in one line, so `data.hflip=no` (a string) never reads as true.
# A float key takes an integer too; `| None`: null is allowed; `object`: anything Lightning itself takes.
TYPES: dict[str, object] = {
    "seed": int,
    "ckpt_path": str | None,
    "rerun_failed": bool,
    "optimized_metric": str,
    **{f"tune.{key}": float for key in ("min_lr", "max_lr")},  # conf/tune.yaml
    **{f"tune.{key}": int for key in ("steps", "max_batch_doublings")},
    "tune.batch_size": bool,
    **{f"data.{key}": int for key in ("batch_size", "image_size", "in_channels", "num_workers", "split_seed")},
    **{f"data.{key}": int for key in ("rotation", "translate")},
    **{f"data.{key}": bool for key in ("alternate_flips", "download", "hflip", "persistent_workers", "pin_memory")},
    "data.verify_checksums": bool,
    **{f"data.{key}": str for key in ("pipeline", "root", "shift_padding", "split")},
    "data.num_classes": int | None,
    "data.val_size": float,
    "model.downsample_stem": bool | None,
    "model.dropout": float,
    **{f"model.{key}": int for key in ("hidden", "width")},
    **{f"model.{key}": float for key in ("norm_eps", "norm_momentum")},
    **{f"model.{key}": float | None for key in ("head_std", "logit_scale")},
    **{f"model.{key}": bool for key in ("norm_train_scale", "pretrained")},
    **{f"module.{key}": bool for key in ("compile", "tta", "tta_flip")},
    "module.label_smoothing": float,
    "module.scheduler_interval": str,
    **{f"optim.{key}": float for key in ("lr", "momentum", "norm_lr_scale", "weight_decay")},
    "optim.nesterov": bool,
    **{f"optim.{key}": str for key in ("algorithm", "norm_group", "units")},
    **{f"optim.muon.{key}": float for key in ("lr", "momentum")},
    **{f"optim.muon.{key}": bool for key in ("nesterov", "normalize_weights")},
    "optim.muon.ns_steps": int,
    **{f"scheduler.{key}": float for key in ("eta_min", "gamma", "final_factor", "initial_factor")},
    **{f"scheduler.{key}": float for key in ("pct_start", "warmup_fraction")},
    **{f"scheduler.{key}": int for key in ("step_size", "T_max")},
    **{f"trainer.{key}": bool for key in ("benchmark", "deterministic", "enable_model_summary", "fast_dev_run")},
    **{f"trainer.{key}": int for key in ("log_every_n_steps", "max_epochs")},
    "trainer.accelerator": str,
    "trainer.default_root_dir": str,
    "trainer.devices": object,  # 1, [0], "auto"
    "trainer.precision": str | int,
    "trainer.gradient_clip_val": float | None,
    **{f"trainer.{key}": float | None for key in ("limit_train_batches", "limit_val_batches")},
    "debug": str | None,  # conf/debug/: the preset's name, and the trainer keys its presets set
    "trainer.limit_test_batches": float | None,
    "trainer.overfit_batches": float,
    "trainer.profiler": object,
    **{f"trainer.profiler.{key}": str for key in ("dirpath", "filename")},
    # callbacks (conf/callbacks/, and those an experiment adds) and loggers: their classes import torch, so their
    # keys' types and ranges are said here, where a start checks them before torch loads
    **{f"callbacks.{name}.{key}": str for name in BEST_KEEPERS for key in ("monitor", "mode")},
    **{f"callbacks.model_checkpoint.{key}": str for key in ("dirpath", "filename")},
    **{f"callbacks.model_checkpoint.{key}": bool for key in ("save_last", "auto_insert_metric_name")},
    "callbacks.lr_monitor.logging_interval": str | None,
    "callbacks.run_time.warn_above_min": float,
    "callbacks.model_summary.max_depth": int,
    **{f"callbacks.hparams.numbers.{key}": float for key in HPARAMS_NUMBERS},
    "callbacks.early_stopping.patience": int,
    "callbacks.weight_averaging.decay": float,
    "callbacks.weight_averaging.update_every_n_steps": int,
    "callbacks.lookahead.every_n_steps": int,
    **{f"callbacks.lookahead.{key}": float for key in ("base", "power")},
    "callbacks.patch_whitening.num_images": int,
    "callbacks.patch_whitening.bias_epochs": int | None,
    **{f"logger.{name}.{key}": str for name in ("csv", "tensorboard", "wandb") for key in ("save_dir", "name")},
    **{f"logger.{name}.version": str | int for name in ("csv", "tensorboard")},
    "logger.tensorboard.default_hp_metric": bool,
    **{f"logger.wandb.{key}": str for key in ("project", "group", "mode")},
    **{f"logger.mlflow.{key}": str for key in ("tracking_uri", "experiment_name", "run_name")},
}
TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def conforms(value: object, declared: object) -> bool:
    """Whether `value` is of the `declared` type: a bool is no number, and an int is a float too."""
    kinds = getattr(declared, "__args__", (declared,))
    if object in kinds or (value is None and type(None) in kinds):
        return True
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return any(kind is not type(None) and isinstance(value, kind) for kind in kinds)


def type_words(declared: object) -> str:
    kinds = getattr(declared, "__args__", (declared,))
    words = [TYPE_WORDS[kind] for kind in kinds if kind in TYPE_WORDS]
    return " or ".join(words) + (" or null" if type(None) in kinds else "")


def check_types(cfg: DictConfig) -> None:
    for key, declared in TYPES.items():
        value = OmegaConf.select(cfg, key, default=ABSENT, throw_on_missing=False)
        if value is not ABSENT and not conforms(value, declared):
            shown = f"'{value}' (a string)" if isinstance(value, str) else value
            raise UserError(f"{key}={shown} must be {type_words(declared)}; set it as such, e.g. {key}={_example(key)}")


INF = math.inf
# key → rule; a key missing from the composed config (a scheduler without `gamma`) is not checked.
RULES: dict[str, Rule] = {
    "seed": Rule(in_range(0, SEED_MAX, ints=True), f"an integer in [0, {SEED_MAX}]", "seed=42"),
    "trainer.max_epochs": Rule(
        in_range(1, INF, ints=True),
        "a positive integer (-1, no end, is not offered)",
        "trainer.max_epochs=20",
    ),
    "optim.lr": Rule(in_range(0, INF, low_open=True), "a positive number", "optim.lr=1e-3"),
    "tune.min_lr": Rule(in_range(0, INF, low_open=True), "a positive, finite number", "tune.min_lr=1e-6"),
    "tune.max_lr": Rule(in_range(0, INF, low_open=True), "a positive, finite number", "tune.max_lr=1"),
    "tune.steps": Rule(
        in_range(20, INF, ints=True), "a whole number of at least 20 (the finder skips its first 10)", "tune.steps=100"
    ),
    "tune.max_batch_doublings": Rule(in_range(1, 25, ints=True), "a whole number from 1 to 25", "6"),
    "optim.weight_decay": Rule(in_range(0, INF), "a number ≥ 0", "optim.weight_decay=5e-4"),
    "optim.momentum": Rule(in_range(0, 1, high_open=True), "a number in [0, 1)", "optim.momentum=0.9"),
    "optim.norm_lr_scale": Rule(in_range(0, INF, low_open=True), "a positive factor", "optim.norm_lr_scale=64"),
    "optim.units": Rule(lambda v: v in ("torch", "per_1024"), "'torch' or 'per_1024'", "optim.units=torch"),
    "optim.muon.lr": Rule(in_range(0, INF, low_open=True), "a positive number", "optim.muon.lr=0.02"),
    "optim.muon.momentum": Rule(in_range(0, 1, high_open=True), "a number in [0, 1)", "optim.muon.momentum=0.95"),
    "optim.muon.ns_steps": Rule(in_range(1, 99, ints=True), "a whole number from 1 to 99", "optim.muon.ns_steps=5"),
    "scheduler.gamma": Rule(
        in_range(0, 1, low_open=True), "a factor in (0, 1]: the lr is multiplied by it", "scheduler.gamma=0.5"
    ),
    "scheduler.step_size": Rule(in_range(1, INF, ints=True), "a positive number of epochs", "scheduler.step_size=10"),
    "scheduler.T_max": Rule(in_range(1, INF, ints=True), "a positive number of epochs", "scheduler.T_max=20"),
    "scheduler.eta_min": Rule(in_range(0, INF), "a learning rate ≥ 0", "scheduler.eta_min=0"),
    "scheduler.pct_start": Rule(in_range(0, 1, low_open=True, high_open=True), "a fraction in (0, 1)", "0.25"),
    "scheduler.warmup_fraction": Rule(in_range(0, 1, high_open=True), "a fraction in [0, 1)", "0.2"),
    "scheduler.final_factor": Rule(in_range(0, 1), "a factor in [0, 1]", "scheduler.final_factor=0.05"),
    "scheduler.initial_factor": Rule(in_range(0, 1), "a factor in [0, 1]", "scheduler.initial_factor=0.2"),
    "module.label_smoothing": Rule(in_range(0, 1, high_open=True), "a number in [0, 1)", "module.label_smoothing=0.1"),
    "module.scheduler_interval": Rule(lambda v: v in ("epoch", "step"), "'epoch' or 'step'", "scheduler=onecycle"),
    "model.dropout": Rule(in_range(0, 1, high_open=True), "a probability in [0, 1)", "model.dropout=0.2"),
    "data.num_classes": Rule(
        in_range(2, INF, ints=True), "an integer ≥ 2, or null to count the classes in the data", "null", nullable=True
    ),
    "data.batch_size": Rule(in_range(1, INF, ints=True), "a positive integer", "data.batch_size=128"),
    "data.split_seed": Rule(in_range(0, SEED_MAX, ints=True), f"an integer in [0, {SEED_MAX}]", "data.split_seed=0"),
    "trainer.gradient_clip_val": Rule(
        in_range(0, INF), "a gradient norm ≥ 0 (0 or null: no clipping)", "trainer.gradient_clip_val=1.0", nullable=True
    ),
    "data.num_workers": Rule(in_range(0, INF, ints=True), "an integer ≥ 0", "data.num_workers=2"),
    "data.image_size": Rule(in_range(1, INF, ints=True), "a positive number of pixels", "data.image_size=32"),
    "data.in_channels": Rule(lambda v: v in (1, 3), "1 (grayscale) or 3 (RGB)", "data.in_channels=3"),
    "data.val_size": Rule(
        val_size, "a number of images (e.g. 5000) or a fraction of them (e.g. 0.1), or 0: no validation split", "0.1"
    ),
    "data.rotation": Rule(in_range(0, 180), "degrees in [0, 180]", "data.rotation=10"),
    "data.translate": Rule(in_range(0, INF, ints=True), "a number of pixels ≥ 0", "data.translate=4"),
    **{
        f"callbacks.{name}.monitor": Rule(
            lambda v: v in METRICS, f"a metric a run reports ({', '.join(METRICS)})", "val/acc"
        )
        for name in BEST_KEEPERS
    },
    **{f"callbacks.{name}.mode": Rule(lambda v: v in ("max", "min"), "'max' or 'min'", "max") for name in BEST_KEEPERS},
    "callbacks.lr_monitor.logging_interval": Rule(
        lambda v: v in ("step", "epoch"), "'step', 'epoch' or null (as the scheduler steps)", "step", nullable=True
    ),
    "callbacks.run_time.warn_above_min": Rule(in_range(0, INF), "a number of minutes ≥ 0", "10"),
    "callbacks.model_summary.max_depth": Rule(in_range(-1, INF, ints=True), "an integer ≥ -1 (-1: every layer)", "2"),
    "callbacks.early_stopping.patience": Rule(in_range(0, INF, ints=True), "a number of validations ≥ 0", "3"),
    "callbacks.weight_averaging.decay": Rule(
        in_range(0, 1, high_open=True), "a number in [0, 1) (at 1 the average never moves)", "0.999"
    ),
    "callbacks.weight_averaging.update_every_n_steps": Rule(in_range(1, INF, ints=True), "a positive integer", "1"),
    "callbacks.lookahead.every_n_steps": Rule(in_range(1, INF, ints=True), "a positive integer", "5"),
    "callbacks.lookahead.base": Rule(in_range(0, 1), "a number in [0, 1]", "0.95"),
    "callbacks.lookahead.power": Rule(in_range(0, INF), "a number ≥ 0", "3"),
    "callbacks.patch_whitening.num_images": Rule(in_range(1, INF, ints=True), "a positive number of images", "5000"),
    "callbacks.patch_whitening.bias_epochs": Rule(
        in_range(0, INF, ints=True), "a number of epochs ≥ 0, or null: it trains in every epoch", "3", nullable=True
    ),
}


def _example(key: str) -> str:
    rule = RULES.get(key)
    declared = getattr(TYPES[key], "__args__", (TYPES[key],))
    if rule is not None and "=" in rule.example:
        return rule.example.split("=", 1)[1]
    if rule is not None:
        return rule.example
    return {bool: "true", int: "1", float: "0.5", str: "…"}.get(declared[0], "…")


def check_values(cfg: DictConfig) -> None:
    """Refuse the first value outside its rule's range (a number's rule says which kind of number), then the first
    value of another type than its key's (`TYPES`), naming the key, the value, what it must be and an example."""
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=ABSENT, throw_on_missing=False)
        if value is ABSENT or (value is None and rule.nullable):
            continue
        if not rule.check(value):
            example = rule.example if "=" in rule.example else f"{key}={rule.example}"
            shown = "null" if value is None else value
            raise UserError(f"{key}={shown} must be {rule.allowed}, e.g. {example}")
    check_types(cfg)


def check_monitor_modes(cfg: DictConfig) -> None:
    """A callback that keeps the best by a metric (`monitor`, `mode`) must take it the way the metric is better:
    the other way it would keep, and test, the worst checkpoint."""
    for name, callback in (cfg.get("callbacks") or {}).items():
        if not isinstance(callback, DictConfig) or callback.get("monitor") not in METRICS or "mode" not in callback:
            continue
        better = "max" if higher_is_better(callback.monitor) else "min"
        if callback.mode != better:
            raise UserError(
                f"callbacks.{name}.mode={callback.mode} takes the worst {callback.monitor} for the best; "
                f"set it the way that metric is better, e.g. callbacks.{name}.mode={better}"
            )


def check_added_keys(added: list[str]) -> None:
    """Refuse a top-level key added on the command line (`+modle=week11_cnn`, as Hydra's own error advises
    for `modle=week11_cnn`): nothing reads it, so the run would go on as if it were not there."""
    for line, override in zip(added, parse(added), strict=True):
        key = override.key_or_group
        if "." in key or "/" in key:
            continue  # a key inside a group (`+trainer.strategy=ddp`) reaches that component
        hint = group_hint(key, override.get_value_element_as_str())
        raise UserError(f"{line} adds a top-level key that nothing reads; {hint or 'remove it'}")


def warn_idle_settings(cfg: DictConfig) -> None:
    """Settings that are valid but change nothing in this run."""
    scheduler = cfg.get("scheduler")
    target = str(scheduler.get("_target_", "")) if isinstance(scheduler, DictConfig) else ""
    epochs = cfg.trainer.get("max_epochs")
    per_epoch = cfg.module.get("scheduler_interval") == "epoch"
    if target.endswith(".StepLR") and per_epoch and integer(epochs) and scheduler.step_size >= epochs:
        log.warning(
            "scheduler.step_size=%s ≥ trainer.max_epochs=%s: the lr never changes, so scheduler.gamma does "
            "nothing; lower scheduler.step_size below the number of epochs",
            scheduler.step_size,
            epochs,
        )


CHECKPOINT = "lit_cifar.callbacks.checkpoint.ResumableCheckpoint"  # keeps last.ckpt alone without validation
NO_VALIDATION = "which data.val_size=0 never computes (no validation split)"


def check_needs_validation(cfg: DictConfig, search: DictConfig | None) -> None:
    """With data.val_size=0, refuse what reads validation metrics: a callback that monitors one (early
    stopping) and, in a search (`search`: its sweeper config), a pruner or a validation metric to optimize."""
    if OmegaConf.select(cfg, "data.val_size") != 0:
        return
    for name, callback in (cfg.get("callbacks") or {}).items():
        monitor = str(callback.get("monitor")) if isinstance(callback, DictConfig) else ""
        if monitor.startswith("val/") and callback.get("_target_") != CHECKPOINT:
            raise UserError(
                f"callbacks.{name} monitors {monitor}, {NO_VALIDATION}; drop callbacks.{name} (e.g. "
                "callbacks=default) or keep a validation split, e.g. data.val_size=5000"
            )
    if search is None:
        return
    pruner = str(search.pruner.get("_target_", "")).rsplit(".", 1)[-1]
    if pruner != "NopPruner":
        raise UserError(
            f"the search's pruner ({pruner}) judges trials by validation accuracy, {NO_VALIDATION}; set "
            "hydra/sweeper/pruner=none or keep a validation split, e.g. data.val_size=5000"
        )
    if str(cfg.get("optimized_metric")).startswith("val/"):
        raise UserError(
            f"optimized_metric={cfg.optimized_metric} is a validation metric, {NO_VALIDATION}; keep a validation "
            "split, e.g. data.val_size=5000, or set optimized_metric=test/acc (the search then selects on the "
            "test set)"
        )


def check_later_options(cfg: DictConfig) -> None:
    """Refuse a key that the optimizer or the scheduler does not take. Both are partials, completed only once
    training starts (with the parameters, with the step count), where such a key would end the run with a
    traceback: one that an experiment set for its own scheduler, say, kept after `scheduler=` chose another.
    This imports their classes (and torch with them), so it comes after the checks that need only the config."""
    import inspect

    from hydra.utils import get_object

    muon = OmegaConf.select(cfg, "optim.muon")
    if isinstance(muon, DictConfig):  # build_optimizer hands these to FilterMuon, which hands the rest to torch's Muon
        classes = (get_object("lit_cifar.training.muon.FilterMuon"), get_object("torch.optim.Muon"))
        taken = {p.name for cls in classes for p in inspect.signature(cls).parameters.values()}
        unknown = [key for key in muon if key not in taken]
        if unknown:
            raise UserError(
                f"optim.muon.{unknown[0]} is not an option of Muon; remove it with ~optim.muon.{unknown[0]}"
            )
    for group in ("optim", "scheduler"):
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        targets = [get_object(node._target_)]
        if "algorithm" in node:  # lit_cifar.training.optim.build_optimizer passes its other keys to the optimizer class
            targets.append(get_object(node.algorithm))
        taken, open_ended = set(), True
        for target in targets:
            parameters = inspect.signature(target).parameters.values()
            taken |= {p.name for p in parameters}
            open_ended = open_ended and any(p.kind is p.VAR_KEYWORD for p in parameters)
        unknown = [key for key in node if not key.startswith("_") and key not in taken]
        if unknown and not open_ended:
            name = targets[-1].__name__
            raise UserError(
                f"{group}.{unknown[0]} is not an option of {name}; remove it with ~{group}.{unknown[0]} "
                f"(an experiment may have set it for another {group})"
            )


def check_start(cfg: DictConfig, overrides: list[str]) -> None:
    """The checks above, once, before a start writes anything; `overrides`: the command line's."""
    check_added_keys(
        [
            line
            for line, override in zip(overrides, parse(overrides), strict=True)
            if override.is_add() or override.is_force_add()
        ]
    )
    check_values(cfg)
    check_monitor_modes(cfg)
    check_metric(cfg.optimized_metric)
    warn_idle_settings(cfg)


def check_and_complete(cfg: DictConfig, overrides: list[str], search: DictConfig | None) -> None:
    """The start's checks (before anything is written), then what the config leaves to the data:
    `data.num_classes=null` is counted in it, before the model config reads it. `search`: the sweeper's
    config in a search job."""
    from hydra.utils import instantiate

    check_start(cfg, overrides)
    check_needs_validation(cfg, search=search)
    if cfg.data.get("num_classes", 0) is None:
        cfg.data.num_classes = instantiate(cfg.data).count_classes()
    check_later_options(cfg)
