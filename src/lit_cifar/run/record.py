"""A run's record: what a run is and how it ended, the one module that writes and reads it.

- `.hydra/` (Hydra's config, hydra and overrides files) and `.hydra/resolved.yaml` (the resolved config a
  resume compares with), written once a start passed its checks.
- `metrics.json`: the outcome. `status` is `ok` (with `metrics`), `failed` (with `reason`), `pruned` (a
  search's verdict, with `pruned_at_epoch`) or `smoke` (a `trainer.fast_dev_run` or a run that trained no
  batch: it shows the code runs, and is never ranked). It also says how the run started: `start` is
  `new`, `resumed`, `extended` (trainer.max_epochs raised) or `from_checkpoint`, with `source_checkpoint`;
  `images`, how many images validation and test measured accuracy on (what a table's interval rests on).

Every write goes to a `.partial` file first and is renamed over the old one, so a kill never leaves a record
half written; every reader goes through `read_outcome`, so a corrupt file reads the same everywhere."""

import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

RESOLVED = Path(".hydra") / "resolved.yaml"
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
    """Write next to `path`, then rename over it: a kill never leaves it half written."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def save_config(run_dir: Path, cfg: DictConfig, hydra_cfg: DictConfig, resolved: dict) -> None:
    """Hydra's `.hydra/` files (config, hydra, overrides), plus the resolved config a resume compares with."""
    folder = run_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    write_atomically(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    write_atomically(folder / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
    write_atomically(folder / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))
    write_atomically(run_dir / RESOLVED, OmegaConf.to_yaml(resolved))


def write_outcome(run_dir: Path, record: dict) -> None:
    write_atomically(run_dir / OUTCOME, json.dumps(record, indent=2))


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
    return record if isinstance(record, dict) else {"status": "unreadable", "reason": f"{path} holds no JSON object"}
