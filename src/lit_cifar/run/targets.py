"""The code a config may name: the `_target_`s that the config files set (conf/, and those the command's own line puts
on Hydra's search path), each admitted only at the place where they set it (a model's at `model`, a callback's under
`callbacks`), and optimizer classes of torch.optim. A checkpoint's stored config and a sweep folder's record are
data from a file, which may come from anyone: `evaluate`, `predict` and `rerun` build nothing that they name outside
this list (docs/errors.md, "security promise"). What a user types on a command line is theirs, and is not checked
here."""

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import yaml
from hydra.core.override_parser.types import Glob, Override
from hydra.errors import OverrideParseException

from lit_cifar.run.errors import CONF_DIR, UserError
from lit_cifar.run.overrides import parse

TARGET = "_target_"
# Named entries, any name: a callback added as `+callbacks.mine=…` is admitted where conf/'s callbacks are.
COLLECTIONS = ("callbacks", "logger", "hydra.callbacks")
NOUNS = {
    "model": "models",
    "data": "datasets",
    "optim": "optimizers",
    "scheduler": "schedulers",
    "trainer": "trainers",
    "module": "modules",
    "callbacks.*": "callbacks",
    "logger.*": "loggers",
    "hydra.callbacks.*": "Hydra callbacks",
    "hydra.launcher": "launchers",
    "hydra.sweeper": "sweepers",
    "hydra.sweeper.pruner": "pruners",
    "hydra.sweeper.sampler": "samplers",
}
# build_optimizer's `algorithm`: a class path it imports, so one of torch's optimizers only.
ALGORITHM = re.compile(r"torch\.optim\.\w+")
# Hydra settings that choose code without a `_target_`: config files from elsewhere, the jobs' environment
# (PYTHONPATH, LD_PRELOAD), logging's handler classes and factories, SLURM's shell lines before a job.
CODE_SETTINGS = (
    "hydra.searchpath",
    "hydra.job.env_set",
    "hydra.job.env_copy",
    "hydra.job_logging",
    "hydra.hydra_logging",
    "hydra.launcher.setup",
    "hydra.launcher.teardown",
    "hydra.launcher.python",
    "hydra.launcher.srun_args",
    "hydra.launcher.additional_parameters",
)
SWEEPER_PARAMS = "hydra.sweeper.params."  # each entry is an override line of its own
# The resolvers that turn a string into config nodes, which may hold a `_target_`.
NODE_RESOLVERS = re.compile(r"\$\{\s*oc\.(create|decode)\s*:")
LINE_BREAK = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")  # what ends a line for a shell or str.splitlines
OPTION = re.compile(r"\w[\w-]*")  # a config group's option: a file's name in the group's folder, never a path


def place(path: str) -> str:
    """Where in a config a node at the dotted `path` sits, one name for every entry of a named collection:
    `callbacks.kill` is at `callbacks.*`."""
    for collection in COLLECTIONS:
        if path.startswith(f"{collection}."):
            rest = path[len(collection) + 1 :].split(".", 1)
            return ".".join([f"{collection}.*", *rest[1:]])
    return path


def _targets_in(node: object, path: str) -> Iterator[tuple[str, str]]:
    """(place, target) of every `_target_` in a config file's `node`, which sits at the dotted `path`."""
    if isinstance(node, dict):
        for key, value in node.items():
            at = f"{path}.{key}" if path else str(key)
            if key == TARGET and isinstance(value, str):
                yield place(path), value
            else:
                yield from _targets_in(value, at)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _targets_in(value, f"{path}.{index}")


def config_dirs() -> tuple[Path, ...]:
    """conf/ and the folders that this command's own line put on Hydra's search path (`hydra.searchpath=[file://…]`):
    the user's configs (their own model, say), chosen by them. A run's or a sweep's record never adds one: its
    `hydra.searchpath` is refused (`CODE_SETTINGS`), and a checkpoint's config holds no Hydra settings."""
    from hydra.core.hydra_config import HydraConfig

    dirs = [CONF_DIR]
    if HydraConfig.initialized():
        sources = HydraConfig.get().runtime.config_sources
        dirs += [Path(source.path).resolve() for source in sources if source.schema == "file"]
    return tuple(dict.fromkeys(dirs))


def allowed_targets() -> dict[str, frozenset[str]]:
    """{place: the `_target_`s the config files set there}: a file of group `a/b` lands at `a.b` unless it is
    `_global_`."""
    return _targets_of(config_dirs())


@cache
def _targets_of(dirs: tuple[Path, ...]) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for folder, path in sorted((conf, path) for conf in dirs for path in conf.rglob("*.yaml")):
        text = path.read_text()
        group = path.parent.relative_to(folder).as_posix()
        package = "" if "@package _global_" in text.split("\n", 1)[0] or group == "." else group.replace("/", ".")
        for at, target in _targets_in(yaml.safe_load(text) or {}, package):
            found.setdefault(at, set()).add(target)
    return {at: frozenset(targets) for at, targets in found.items()}


def admitted(node: str, target: object) -> bool:
    """Whether conf/ sets `target` as the `_target_` of a node at the dotted path `node`."""
    return isinstance(target, str) and target in allowed_targets().get(place(node), ())


def not_admitted(node: str, target: object) -> str:
    """`sets model._target_ to torch.load, which is not one of lit_cifar's models`."""
    noun = NOUNS.get(place(node))
    why = f"which is not one of lit_cifar's {noun}" if noun else "where no lit_cifar config names code"
    return f"sets {node}.{TARGET} to {target}, {why}"


def code_in_stored(config: object, group: str) -> str | None:
    """What in a stored config `group` (`model`, `data`) is more than the project's own class for that group and
    plain values, in words; None when nothing is."""
    target = config.get(TARGET) if isinstance(config, dict) else config
    if not admitted(group, target):
        return not_admitted(group, target)
    return _not_plain({key: value for key, value in config.items() if key != TARGET}, group)


def _not_plain(value: object, path: str) -> str | None:
    if value is None or isinstance(value, bool | int | float | str):
        return None
    if isinstance(value, list | tuple):
        return next((found for i, v in enumerate(value) if (found := _not_plain(v, f"{path}.{i}"))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            at = f"{path}.{key}"
            if not isinstance(key, str) or key.startswith("_"):  # Hydra's _target_, _args_, _partial_, …
                shown = f" to {item}" if isinstance(item, str) else ""
                return f"sets {at}{shown}, a key that builds code, where a stored config holds plain values"
            if found := _not_plain(item, at):
                return found
        return None
    return f"sets {path} to a {type(value).__name__} value, where a stored config holds plain values"


def code_in_override(line: str) -> str | None:
    """What in the override `line` chooses code that the project's own configs do not name, in words; None when
    nothing does. A config group's option must be a name (never a path to a file elsewhere)."""
    (override,) = parse([line])
    if override.is_delete():
        return None
    key, values = override.key_or_group, _values(override)
    if "/" in key or (CONF_DIR / key).is_dir():
        names = [v for value in values for v in (value if isinstance(value, list) else [value])]
        bad = next((name for name in names if name is not None and not OPTION.fullmatch(str(name))), None)
        return None if bad is None else f"chooses {bad} for {key}, which is not the name of one of its options"
    return next((found for value in values if (found := _code_in_value(key, value))), None)


def _values(override: Override) -> list:
    """The values an override sets, each of a sweep's."""
    value = override.value()
    if isinstance(value, Glob) or (override.is_sweep_override() and not override.is_discrete_sweep()):
        return []  # a glob picks among a group's own options; a range or an interval holds numbers
    return list(override.sweep_iterator()) if override.is_discrete_sweep() else [value]


def _code_in_value(path: str, value: object) -> str | None:
    if setting := next((s for s in CODE_SETTINGS if path == s or path.startswith(f"{s}.")), None):
        return f"sets {setting}, which chooses code"
    if path.startswith(SWEEPER_PARAMS) and not isinstance(value, dict):
        return code_in_override(f"{path.removeprefix(SWEEPER_PARAMS)}={value}")
    if isinstance(value, dict):
        return next((found for k, v in value.items() if (found := _code_in_value(f"{path}.{k}", v))), None)
    if isinstance(value, list):
        return next((found for i, v in enumerate(value) if (found := _code_in_value(f"{path}.{i}", v))), None)
    key = path.rsplit(".", 1)[-1]
    if key == TARGET and not admitted(node := path.removesuffix(f".{TARGET}"), value):
        return not_admitted(node, value)
    if key == "algorithm" and not ALGORITHM.fullmatch(str(value)):
        return f"sets {path} to {value}, which is not one of torch.optim's optimizers"
    if isinstance(value, str) and LINE_BREAK.search(value):  # a job script (sbatch's #SBATCH lines) runs it as shell
        return f"sets {path} to a value that holds a line break"
    if isinstance(value, str) and NODE_RESOLVERS.search(value):
        return f"sets {path} to {value}, which makes config nodes (and code) out of a string"
    return None


def shown(line: str) -> str:
    """`line` on one line: its line breaks written as escapes."""
    return LINE_BREAK.sub(lambda found: repr(found.group())[1:-1], line)


def refuse_code(lines: list[str], source: Path, trusted: list[str] = ()) -> None:
    """Refuse, in one line, the first of the override `lines` read from the file `source` that chooses code the
    project's own configs do not name, unless it is one of `trusted` (the command's own)."""
    for line in lines:
        if line in trusted:
            continue
        try:
            problem = code_in_override(line)
        except OverrideParseException:
            problem = "is no override Hydra can parse"
        if problem:
            raise UserError(
                f"{source}'s override {shown(line)} {problem}; nothing a folder holds chooses code: give that override "
                "on the command line yourself if you trust it"
            )
