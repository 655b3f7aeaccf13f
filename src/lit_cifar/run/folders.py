"""A run's folder and a sweep's folder, each read here once into a record the rest take (`RunRecord.load`,
`SweepRecord.load`): nothing outside lit_cifar.run opens a `.hydra/` file or a `multirun.yaml`.

A stored yaml is data: it is read as written, its interpolations never resolved (resolving a stored
`${lit_cifar.claim:…}` would claim a folder, an `${oc.env:…}` read the environment), and a stored value that is
an interpolation is refused in one line naming the file where it would be used as a value. Override lines stay
override lines (lit_cifar.run.overrides reads them)."""

from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import yaml
from hydra.core.override_parser.types import IntervalSweep
from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.errors import UserError
from lit_cifar.run.overrides import last_of_each, parse
from lit_cifar.run.record import OUTCOME, RESOLVED, read_outcome, run_id, write_atomically

HYDRA_DIR = ".hydra"
OVERRIDES = Path(HYDRA_DIR) / "overrides.yaml"  # the task overrides a run was started with
HYDRA = Path(HYDRA_DIR) / "hydra.yaml"  # its Hydra config: group choices, Hydra overrides, the sweeper's settings
MULTIRUN = "multirun.yaml"  # a sweep's config as it started, with its overrides


def _is_interpolation(value: object) -> bool:
    return isinstance(value, str) and "${" in value


@cache
def _yaml_loader() -> type:
    from omegaconf._utils import get_yaml_loader

    return get_yaml_loader()


def read_stored(path: Path) -> object:
    """A stored yaml as plain data, its interpolations left as written: parsed as `OmegaConf.load` parses it (floats
    such as 1e-3, duplicate keys refused), without building a config of it, which a report of many jobs waits for."""
    with path.open(encoding="utf-8") as file:
        found = yaml.load(file, Loader=_yaml_loader())  # OmegaConf's loader is a SafeLoader
    return {} if found is None else found


def _read_or(path: Path, default: object) -> object:
    """`read_stored(path)`, or `default` when it has no such file or it cannot be read (a row shows what else the
    folder says)."""
    try:
        return read_stored(path) if path.is_file() else default
    except Exception:  # edited by hand or cut short
        return default


@dataclass(frozen=True)
class Stored:
    """A stored yaml's tree, read as written. `get` gives the value of a dotted key; a value that is an
    interpolation is refused in one line naming the file."""

    path: Path
    tree: object
    prefix: str = ""  # where `tree` lies in the file (`hydra.`), to name a key as the file has it

    def get(self, key: str, default: object = None) -> object:
        node = self.tree
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return default if node is None else self.value(key, node)

    def value(self, key: str, value: object) -> object:
        """`value`, read at `key`; refused when it is an interpolation."""
        if _is_interpolation(value):
            raise UserError(
                f"{self.path}: {self.prefix}{key} is {value}, an interpolation where a value was written; a stored "
                "record is data, never resolved: restore the file Hydra wrote, or write the value itself"
            )
        return value

    def section(self, key: str) -> "Stored":
        """The part under the dotted `key` (an empty one when it has none)."""
        found = self.get(key)
        return Stored(self.path, found if isinstance(found, dict) else {}, f"{self.prefix}{key}.")


def grid_lines(params: dict) -> list[str]:
    """A sweep's `hydra.sweeper.params` (set by the named `sweep=` configs), as typed, as override lines."""
    return [f"{key}={value}" for key, value in params.items()]


def _lines(found: object) -> list[str]:
    if not (isinstance(found, list) and all(isinstance(line, str) for line in found)):
        raise ValueError("its hydra.overrides are not lists of override lines")
    return found


@dataclass(frozen=True)
class RunRecord:
    """What a run's folder says: the overrides it was started with (None when it recorded none readable), its
    resolved config, its Hydra config (group choices, Hydra overrides, the sweeper's settings), its id and its
    outcome (`metrics.json`, lit_cifar.run.record)."""

    dir: Path
    overrides: list[str] | None
    resolved: Stored
    hydra: Stored  # the `hydra` part of its `.hydra/hydra.yaml`
    run_id: str | None
    outcome: dict

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        overrides = _read_or(run_dir / OVERRIDES, None)
        hydra = _read_or(run_dir / HYDRA, {})
        return cls(
            dir=run_dir,
            overrides=overrides if isinstance(overrides, list) and all(isinstance(o, str) for o in overrides) else None,
            resolved=Stored(run_dir / RESOLVED, _read_or(run_dir / RESOLVED, {})),
            hydra=Stored(run_dir / HYDRA, hydra.get("hydra", {}) if isinstance(hydra, dict) else {}, "hydra."),
            run_id=run_id(run_dir),
            outcome=read_outcome(run_dir) if run_dir.is_dir() else {},
        )

    @property
    def overrides_path(self) -> Path:
        return self.dir / OVERRIDES

    @property
    def started(self) -> bool:
        """Whether the run wrote its Hydra record (a job that failed at its start has its metrics.json alone)."""
        return self.overrides is not None

    def setting(self, key: str) -> object:
        """The value the run used for a dotted `key` (its resolved config's), else its choice for a config group;
        None when it recorded neither."""
        value = self.resolved.get(key)
        return value if isinstance(value, str | int | float | bool) else self.hydra.get(f"runtime.choices.{key}")

    def hydra_overrides(self) -> list[str]:
        """The Hydra overrides of its command line (its sweep dir, a confirmation job's folder …)."""
        found = self.hydra.get("overrides.hydra", [])
        return found if isinstance(found, list) and all(isinstance(line, str) for line in found) else []


@dataclass(frozen=True)
class SweepRecord:
    """What a sweep's `multirun.yaml` says: its command line's task overrides and Hydra overrides (launcher,
    sweep dir, …), its grid (`hydra.sweeper.params`, set by a named `sweep=` config) as override lines, and the
    rest of its config (`config`: held-fixed values, the optimized metric, the sweeper's settings)."""

    dir: Path
    config: Stored
    task: list[str]
    hydra_lines: list[str]
    grid: list[str]
    final: dict = field(repr=False)  # {key: Override}: each key's last override, the command line's over the grid

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepRecord":
        """The sweep's record, refused in one line unless it holds what Hydra writes there: override lines (lists
        of strings) that parse, under `hydra.overrides`."""
        path = sweep_dir / MULTIRUN
        if not path.is_file():
            raise UserError(f"{sweep_dir} is not a sweep dir (no {MULTIRUN}); pass a multirun/DATE/TIME folder")
        written = path.stat()
        return cls._parsed(sweep_dir, written.st_mtime_ns, written.st_size)

    @classmethod
    @lru_cache(maxsize=8)  # a sweep asks for it for every job it names; a file written again is read again
    def _parsed(cls, sweep_dir: Path, mtime_ns: int, size: int) -> "SweepRecord":
        path = sweep_dir / MULTIRUN
        try:
            tree = read_stored(path)
            overrides = tree["hydra"]["overrides"]
            task, hydra_lines = _lines(overrides["task"]), _lines(overrides.get("hydra") or [])
            params = tree["hydra"]["sweeper"].get("params") or {}
            grid = grid_lines(params)
            parse([*task, *hydra_lines, *grid])
        except Exception as err:  # cut short by a kill, edited by hand, or not Hydra's
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(
                f"{path} is not a sweep record Hydra wrote ({reason}); restore it from the sweep's own copy, or "
                "start the sweep again in a new hydra.sweep.dir"
            ) from None
        final = last_of_each(grid + task)  # the command line's come last
        return cls(sweep_dir, Stored(path, tree), task, hydra_lines, grid, final)

    def job_names(self) -> list[str]:
        """The names of its job folders: those that wrote their Hydra record, and those that failed at their start
        (a metrics.json alone); refused when it holds none."""
        found = {p.parents[1].name for p in self.dir.glob(f"*/{OVERRIDES}")}
        found |= {p.parent.name for p in self.dir.glob("*/metrics.json")}
        if not found:
            raise UserError(f"{self.dir} holds no jobs (no */{OVERRIDES}); did the sweep start?")
        return sorted(found)

    @property
    def path(self) -> Path:
        return self.config.path

    @property
    def swept_keys(self) -> list[str]:
        """The keys it varies: those in sweep syntax (`a=1,2`, `range(…)`, `interval(…)`) on its command line or in
        `hydra.sweeper.params`."""
        return [key for key, override in self.final.items() if override.is_sweep_override()]

    @property
    def log_scaled_keys(self) -> set[str]:
        """The swept keys tagged `tag(log, …)`: a search draws them log-uniformly, and a plot shows them so."""
        return {key for key, o in self.final.items() if o.is_sweep_override() and "log" in o.value().tags}

    @property
    def sampled_keys(self) -> set[str]:
        """The swept keys a search draws from a range (`interval(…)`): numbers on a line, not values of a list."""
        return {key for key, o in self.final.items() if o.is_sweep_override() and isinstance(o.value(), IntervalSweep)}

    @property
    def sweeper(self) -> str | None:
        """The `_target_` of its sweeper."""
        return self.config.get("hydra.sweeper._target_")

    @property
    def optimized_metric(self) -> str:
        return self.config.get("optimized_metric") or "val/acc_best"

    @property
    def choices(self) -> dict[str, str]:
        """Its config group choices (`model: week11_cnn`), Hydra's own left out."""
        found = self.config.get("hydra.runtime.choices") or {}
        return {
            group: self.config.value(f"hydra.runtime.choices.{group}", choice)
            for group, choice in found.items()
            if choice is not None and not group.startswith("hydra")
        }


def is_sweep_dir(path: Path) -> bool:
    return (path / MULTIRUN).is_file()


def save_sweep_config(sweep_dir: Path, config: DictConfig) -> None:
    """Write a sweep's `multirun.yaml` as Hydra's own sweepers do (its config, interpolations as written)."""
    write_atomically(sweep_dir / MULTIRUN, OmegaConf.to_yaml(config))


def run_left_in(folder: Path) -> bool:
    """Whether `folder` holds what a single run leaves there (its Hydra record, its outcome, its checkpoints)."""
    return any((folder / name).exists() for name in (HYDRA_DIR, OUTCOME, "checkpoints"))


def load_folder(path: Path) -> SweepRecord | RunRecord:
    """The record of a sweep dir or of a run dir (or a sweep's job folder); refused in one line when `path` is
    neither, or its run's overrides cannot be read."""
    if is_sweep_dir(path):
        return SweepRecord.load(path)
    if not (path / OVERRIDES).is_file():
        raise UserError(
            f"{path} is neither a sweep dir (no {MULTIRUN}) nor a run dir (no {OVERRIDES}); "
            "pass multirun/DATE/TIME or outputs/DATE/TIME folders, or a glob of them"
        )
    run = RunRecord.load(path)
    if not run.started:
        raise UserError(f"{path / OVERRIDES} holds no override lines Hydra wrote; restore it, or leave the run out")
    return run
