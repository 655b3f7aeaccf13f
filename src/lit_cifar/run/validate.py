"""The checks a start passes before anything is built or written: every value a user sets, against its key's type
and range, plus the settings that parse but do nothing (warned, not refused). A key's type and range are stated
once: by the annotation of the class its config builds (lit_cifar.run.declared reads it from the source), by
`Run` for the keys no class takes, and by `RANGES_OF_OTHERS` for the ranges of torch's and Lightning's classes.

Only omegaconf is imported here (the classes are read, never imported), so a refused start answers in the time it
takes to compose the config.
What only the data can tell (its classes, files, pixels, labels) is checked by the datamodule as it loads."""

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from omegaconf import DictConfig, ListConfig, OmegaConf

from lit_cifar.run.declared import SEED_MAX, Key, KeysOf, OneOf, Range, declared_keys, integer
from lit_cifar.run.errors import UserError, group_hint
from lit_cifar.run.metrics import METRICS, check_metric, higher_is_better
from lit_cifar.run.overrides import parse
from lit_cifar.run.validation_split import RANKED_WITHOUT_VALIDATION, has_validation, needs_validation

log = logging.getLogger(__name__)

TARGET = "_target_"
UNESCAPED = re.compile(r"(?<!\\)\$\{")  # an interpolation's start


@dataclass
class Tune:
    """conf/tune.yaml's `tune` keys: Lightning's lr finder's settings (lit_cifar.tune)."""

    min_lr: Annotated[float, Range(0, low_open=True, words="a positive, finite number", example="tune.min_lr=1e-6")]
    max_lr: Annotated[float, Range(0, low_open=True, words="a positive, finite number", example="tune.max_lr=1")]
    steps: Annotated[
        int, Range(20, ints=True, words="a whole number of at least 20 (the finder skips its first 10)", example="100")
    ]
    batch_size: bool
    max_batch_doublings: Annotated[int, Range(1, 25, ints=True, words="a whole number from 1 to 25", example="6")]


@dataclass
class Run:
    """The top-level keys that no class takes (conf/train.yaml's and the commands' own); each other top-level key
    is a node whose `_target_` names the class that types its keys. A new top-level key is one line here."""

    seed: Annotated[int, Range(0, SEED_MAX, ints=True, words="an integer in [0, 4294967295]", example="seed=42")]
    name: str | None  # names the run's folder (lit_cifar.run.dirs.named_dir checks it is a plain folder name)
    tags: list[str]
    ckpt_path: str | None
    rerun_failed: bool
    optimized_metric: str
    debug: str | None  # conf/debug/: the preset's name
    tune: Tune
    runs_dir: str  # conf/tune.yaml: where each tuning claims its folder
    # without a `_target_` (evaluate's and predict's `data.…`, put in place of a checkpoint's): what every dataset takes
    data: Annotated[dict, KeysOf("lit_cifar.data.base.ImageDataModule")]


RUN = f"{__name__}.Run"

BEST_KEEPER_RANGES = {
    "monitor": OneOf(*METRICS, words=f"a metric a run reports ({', '.join(METRICS)})", example="val/acc"),
    "mode": OneOf("max", "min", words="'max' or 'min'", example="max"),
}
# The ranges of keys that torch's and Lightning's classes take ({class: {key: range}}, the class where its __init__
# is defined): their types come from those classes' own annotations, but their sources are not ours to annotate.
RANGES_OF_OTHERS: dict[str, dict[str, Range | OneOf]] = {
    "torch.optim.sgd.SGD": {
        "momentum": Range(0, 1, high_open=True, words="a number in [0, 1)", example="optim.momentum=0.9")
    },
    "torch.optim._muon.Muon": {
        "lr": Range(0, low_open=True, words="a positive number", example="optim.muon.lr=0.02"),
        "momentum": Range(0, 1, high_open=True, words="a number in [0, 1)", example="optim.muon.momentum=0.95"),
        "ns_steps": Range(1, 99, ints=True, words="a whole number from 1 to 99", example="optim.muon.ns_steps=5"),
    },
    "torch.optim.lr_scheduler.StepLR": {
        "gamma": Range(
            0, 1, low_open=True, words="a factor in (0, 1]: the lr is multiplied by it", example="scheduler.gamma=0.5"
        ),
        "step_size": Range(1, ints=True, words="a positive number of epochs", example="scheduler.step_size=10"),
    },
    "torch.optim.lr_scheduler.CosineAnnealingLR": {
        "T_max": Range(1, ints=True, words="a positive number of epochs", example="scheduler.T_max=20"),
        "eta_min": Range(0, words="a learning rate ≥ 0", example="scheduler.eta_min=0"),
    },
    "lightning.pytorch.trainer.trainer.Trainer": {
        "max_epochs": Range(
            1, ints=True, words="a positive integer (-1, no end, is not offered)", example="trainer.max_epochs=20"
        ),
        "gradient_clip_val": Range(
            0, words="a gradient norm ≥ 0 (0 or null: no clipping)", example="trainer.gradient_clip_val=1.0"
        ),
    },
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint": BEST_KEEPER_RANGES,
    "lightning.pytorch.callbacks.early_stopping.EarlyStopping": {
        **BEST_KEEPER_RANGES,
        "patience": Range(0, ints=True, words="a number of validations ≥ 0", example="3"),
    },
    "lightning.pytorch.callbacks.lr_monitor.LearningRateMonitor": {
        "logging_interval": OneOf("step", "epoch", words="'step', 'epoch' or null (as the scheduler steps)")
    },
    "lightning.pytorch.callbacks.model_summary.ModelSummary": {
        "max_depth": Range(-1, ints=True, words="an integer ≥ -1 (-1: every layer)", example="2")
    },
}
TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "a list"}
TYPE_WORDS |= {dict: "a mapping"}
TYPE_EXAMPLES = {bool: "true", int: "1", float: "0.5", str: "…", list: "[a,b]"}


def conforms(value: object, kinds: tuple[type, ...]) -> bool:
    """Whether `value` is of one of the types `kinds`: a bool is no number, and an int is a float too."""
    if value is None:
        return type(None) in kinds
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return any(kind is not type(None) and isinstance(value, kind) for kind in kinds)


def type_words(kinds: tuple[type, ...]) -> str:
    words = [TYPE_WORDS[kind] for kind in kinds if kind in TYPE_WORDS]
    return " or ".join(words) + (" or null" if type(None) in kinds else "")


def _range(key: str, declared: Key) -> Range | OneOf | None:
    return declared.check or RANGES_OF_OTHERS.get(declared.owner, {}).get(key)


def _example(path: str, declared: Key, check: Range | OneOf | None) -> str:
    if check is not None and check.example:
        return check.example if "=" in check.example else f"{path}={check.example}"
    if declared.default is not None and not isinstance(declared.default, tuple):
        return f"{path}={str(declared.default).lower() if isinstance(declared.default, bool) else declared.default}"
    return f"{path}={next((TYPE_EXAMPLES[kind] for kind in declared.kinds or () if kind in TYPE_EXAMPLES), '…')}"


def check_value(path: str, value: object, declared: Key) -> None:
    """Refuse `value` of the key at `path` in one line if it is outside the key's range or not of its type."""
    if value is None and declared.kinds is not None and type(None) in declared.kinds:
        return
    check = _range(path.rsplit(".", 1)[-1], declared)
    if check is not None and not check.accepts(value):
        shown = "null" if value is None else value
        raise UserError(f"{path}={shown} must be {check.allowed()}, e.g. {_example(path, declared, check)}")
    if declared.kinds is not None and not conforms(value, declared.kinds):
        shown = f"'{value}' (a string)" if isinstance(value, str) else value
        example = _example(path, declared, check)
        raise UserError(f"{path}={shown} must be {type_words(declared.kinds)}; set it as such, e.g. {example}")


def _declared(node: DictConfig, path: str, given: str | None) -> dict[str, Key]:
    """The keys of the config `node` at `path`: those of the class its `_target_` names (and, for the optimizer,
    those of the `algorithm` it hands the other keys to), else those of `given` (a dataclass a parent names)."""
    target = node.get(TARGET) if TARGET in node and not OmegaConf.is_interpolation(node, TARGET) else None
    if isinstance(target, str):
        keys = declared_keys(target)
        algorithm = node.get("algorithm") if "algorithm" in node else None
        if isinstance(algorithm, str) and any(key not in keys for key in node if not str(key).startswith("_")):
            keys = {**declared_keys(algorithm), **keys}
        return keys
    return declared_keys(given) if given else {}


def _follows_another_key(node: DictConfig, key: object) -> bool:
    """Whether `node[key]` is an interpolation (`${data.num_classes}`), not a string whose `${` is escaped (a
    stored config's value, read as it is)."""
    return OmegaConf.is_interpolation(node, key) and bool(UNESCAPED.search(str(node._get_node(key)._value())))


def declared_leaves(
    node: DictConfig, path: str = "", given: str | None = RUN
) -> Iterator[tuple[str, object, Key | None]]:
    """(dotted key, value, its declaration or None) of every value `node` sets, except Hydra's own keys, values
    that follow another key (checked there) and the entries of a mapping its class takes whole (`hparams.numbers`)."""
    keys = _declared(node, path, given)
    for key in node:
        if str(key).startswith("_") or _follows_another_key(node, key) or OmegaConf.is_missing(node, key):
            continue
        at = f"{path}.{key}" if path else str(key)
        value, declared = node[key], keys.get(str(key))
        if isinstance(value, DictConfig):
            if declared is None or declared.nested is not None or TARGET in value:
                yield from declared_leaves(value, at, declared.nested if declared else None)
        elif not isinstance(value, ListConfig):
            yield at, value, declared


def check_values(cfg: DictConfig) -> None:
    """Refuse the first value outside its key's range or of another type than its key's, naming the key, the value,
    what it must be and an example. A key's type is its class's annotation: the class its node's `_target_` names
    (lit_cifar.run.declared reads it from the source, importing nothing), or `Run` for the top level."""
    for path, value, declared in declared_leaves(cfg):
        if declared is not None:
            check_value(path, value, declared)


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
    if has_validation(OmegaConf.select(cfg, "data.val_size")):
        return
    for name, callback in (cfg.get("callbacks") or {}).items():
        monitor = str(callback.get("monitor")) if isinstance(callback, DictConfig) else ""
        if needs_validation(monitor) and callback.get("_target_") != CHECKPOINT:
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
    if needs_validation(cfg.get("optimized_metric")):
        raise UserError(
            f"optimized_metric={cfg.optimized_metric} is a validation metric, {NO_VALIDATION}; keep a validation "
            f"split, e.g. data.val_size=5000, or set optimized_metric={RANKED_WITHOUT_VALIDATION} (the search then "
            "selects on the test set)"
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
