"""A run's record: what a run is and how it ended, the one module that writes and reads it.

- `.hydra/` (Hydra's config, hydra and overrides files) and `.hydra/resolved.yaml` (the resolved config a
  resume compares with), written once a start passed its checks; `.hydra/run_id`, the run's identity, written
  when it first starts and kept by every resume (a table counts runs by it: a copied folder is the same run).
- `metrics.json`: the outcome. `status` is `ok` (with `metrics`), `failed` (with `reason`), `pruned` (a
  search's verdict, with `pruned_at_epoch`) or `smoke` (a `debug=` preset, a `trainer.fast_dev_run` or a run that
  trained no batch: it shows the code runs, and is never ranked). It also says how the run started: `start` is
  `new`, `resumed`, `extended` (trainer.max_epochs raised) or `from_checkpoint`, with `source_checkpoint`;
  `images`, how many images validation and test measured accuracy on (what a table's interval rests on).

Every write goes to a `.partial` file first and is renamed over the old one, so a kill never leaves a record
half written; every reader goes through `read_outcome`, so a corrupt file reads the same everywhere. A record whose
metrics are not finite numbers (a NaN loss), or whose image counts are not counts, is written and read as `failed`
with the reason: it is never ranked."""

import json
import math
import os
import uuid
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.metrics import METRICS, is_accuracy

RESOLVED = Path(".hydra") / "resolved.yaml"
RUN_ID = Path(".hydra") / "run_id"
OUTCOME = "metrics.json"
SUPERSEDED = "metrics.superseded.json"
FINAL = ("ok", "smoke")  # a run that ended by itself: a re-run leaves it as it is
RANKED = ("ok",)  # what a table or a search may rank


class RunPruned(Exception):
    """Raised in a search job whose trial the pruner stopped: the job is recorded as `pruned`, not failed."""

    def __init__(self, epoch: int, value: float, best: float | None, metric: str = "val/acc") -> None:
        super().__init__(f"pruned after epoch {epoch}: {metric} {value:.4f} is behind the other trials there")
        self.epoch, self.best = epoch, best


def write_atomically(path: Path, text: str) -> None:
    """Write next to `path`, then rename over it: a kill never leaves it half written, nor a full disk (or a stop)
    a half-written file next to it."""
    partial = path.with_name(f"{path.name}.partial")
    try:
        partial.write_text(text)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def save_config(run_dir: Path, cfg: DictConfig, hydra_cfg: DictConfig, resolved: dict) -> None:
    """Hydra's `.hydra/` files (config, hydra, overrides), plus the resolved config a resume compares with."""
    folder = run_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    write_atomically(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    write_atomically(folder / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
    write_atomically(folder / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))
    write_atomically(run_dir / RESOLVED, OmegaConf.to_yaml(resolved))
    if not (run_dir / RUN_ID).is_file():  # a resumed run keeps the id it started with
        write_atomically(run_dir / RUN_ID, f"{uuid.uuid4().hex}\n")


def run_id(run_dir: Path) -> str | None:
    """The id a run was given when it started; None for a run recorded before runs had one."""
    try:
        return (run_dir / RUN_ID).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _problem(record: dict) -> str | None:
    """Why a record cannot be ranked: a metric that is no finite number, an image count that is no count, a status
    that is no word; None when there is nothing wrong with it."""
    metrics, images = record.get("metrics") or {}, record.get("images") or {}
    if not isinstance(record.get("status", "ok"), str):
        return f"its status is {json.dumps(record['status'])}, not a word"
    if not isinstance(metrics, dict) or not isinstance(images, dict):
        return "its metrics and images are not each a mapping of names to numbers"
    for name, value in metrics.items():
        if value is not None and not _finite(value):
            return f"{name} is {json.dumps(value)}, not a finite number"
        if value is not None and name in METRICS and not (0 <= value <= 1 if is_accuracy(name) else value >= 0):
            return f"{name} is {value}, which no {'accuracy' if is_accuracy(name) else 'loss'} can be"
    for split, count in images.items():
        if not _count(count):
            return f"images.{split} is {json.dumps(count)}, not a number of images"
    return None


def _checked(record: dict) -> dict:
    """`record`, or when something in it cannot be ranked, the same run as `failed` with the reason and without
    the values that are no numbers."""
    reason = _problem(record)
    if reason is None:
        return record
    metrics, images = (record.get(key) if isinstance(record.get(key), dict) else {} for key in ("metrics", "images"))
    return record | {
        "status": "failed",
        "reason": reason,
        "metrics": {name: value if _finite(value) else None for name, value in metrics.items()},
        "images": {split: count for split, count in images.items() if _count(count)},
    }


def write_outcome(run_dir: Path, record: dict) -> dict:
    """Write the run's outcome; returns it as written (`failed` when a metric is no finite number)."""
    record = _checked(record)
    write_atomically(run_dir / OUTCOME, json.dumps(record, indent=2, allow_nan=False))
    return record


def record_failed(run_dir: Path, reason: str) -> None:
    write_outcome(run_dir, {"status": "failed", "reason": reason})


def record_pruned(run_dir: Path, pruned: RunPruned) -> None:
    write_outcome(
        run_dir,
        {
            "status": "pruned",
            "reason": str(pruned),
            "pruned_at_epoch": pruned.epoch,
            "metrics": {"val/acc_best": pruned.best},
        },
    )


def supersede(run_dir: Path) -> None:
    """Keep an extended or retried run's old outcome aside: it no longer describes the run."""
    if (run_dir / OUTCOME).exists():
        os.replace(run_dir / OUTCOME, run_dir / SUPERSEDED)


def has_outcome(run_dir: Path) -> bool:
    return (run_dir / OUTCOME).is_file()


def read_outcome(run_dir: Path) -> dict:
    """The run's `metrics.json`: {} when it has none, status `unreadable` (with the reason) when it is corrupt."""
    path = run_dir / OUTCOME
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_bytes())
    except ValueError as err:  # a file cut short, or not JSON at all
        return {"status": "unreadable", "reason": f"{path} is not valid JSON ({err})"}
    if not isinstance(record, dict):
        return {"status": "unreadable", "reason": f"{path} holds no JSON object"}
    return _checked(record)
