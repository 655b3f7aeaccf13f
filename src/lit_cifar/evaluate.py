"""`python -m lit_cifar.evaluate ckpt_path=…`: accuracy, per-class accuracy and the confusion matrix of a
checkpoint on the test split of the dataset it was trained on, written next to the run that made it
(`<run dir>/evaluate/DATE_TIME/`), where TensorBoard shows it beside that run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.dirs import held, is_empty, removed_on_error
from lit_cifar.run.errors import UserError, exit_on_user_error, run_app
from lit_cifar.run.validate import check_values
from lit_cifar.sweep.resolvers import register
from lit_cifar.training.restore import trained_checkpoint

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
register()


def confusion_matrix(ckpt_path: Path, ckpt: dict, data_overrides: dict, device: str) -> tuple[torch.Tensor, list[str]]:
    """Rows: true class, columns: predicted class, over the test split; and the class names."""
    import torch
    from torchmetrics.classification import MulticlassConfusionMatrix

    from lit_cifar.data.batched import unpadded
    from lit_cifar.training.restore import load_test_split, trained_logits

    logits_of, on = trained_logits(ckpt, ckpt_path, device)
    datamodule = load_test_split(ckpt, ckpt_path, "evaluate", **data_overrides)
    matrix = MulticlassConfusionMatrix(len(datamodule.class_names)).to(on)
    with torch.inference_mode():
        for images, labels in datamodule.test_dataloader():
            images, labels = images.to(on), labels.to(on)
            matrix.update(unpadded(logits_of(datamodule.normalize(images)), labels), labels)
        return matrix.compute().cpu(), datamodule.class_names


def evaluate(cfg: DictConfig) -> dict:
    data_overrides = {key: value for key, value in cfg.data.items() if value is not None}  # null: the checkpoint's
    check_values(OmegaConf.create({"data": data_overrides}))
    path, ckpt = trained_checkpoint(cfg.ckpt_path, "evaluate")
    # TensorBoard and matplotlib (as torch) are imported once the input passed its checks: `--help`, a bad key or
    # value answers in the time Hydra takes to start
    from torch.utils.tensorboard import SummaryWriter

    from lit_cifar.callbacks.figures import confusion_figure

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    matrix, class_names = confusion_matrix(path, ckpt, data_overrides, cfg.device)
    matrix = matrix.double()  # exact ratios of the counts
    per_class = (matrix.diag() / matrix.sum(1).clamp(min=1)).tolist()
    result = {
        "checkpoint": str(path.resolve()),
        "test_images": int(matrix.sum()),
        "accuracy": (matrix.diag().sum() / matrix.sum()).item(),
        "per_class_accuracy": dict(zip(class_names, per_class, strict=True)),
        "confusion_matrix": matrix.long().tolist(),
    }
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=2))
    title = f"test accuracy {result['accuracy']:.4f} on {result['test_images']} images, {path.name}"
    figure = confusion_figure(matrix.long(), class_names, title)
    figure.savefig(run_dir / "confusion_matrix.png", dpi=100)
    with SummaryWriter(str(run_dir / "tensorboard")) as writer:
        writer.add_scalar("test/acc", result["accuracy"])
        for name, accuracy in result["per_class_accuracy"].items():
            writer.add_scalar(f"test/acc_per_class/{name}", accuracy)
        writer.add_figure("test/confusion_matrix", figure)
    log.info(
        "accuracy %.4f on %d test images; %s",
        result["accuracy"],
        result["test_images"],
        ", ".join(f"{name} {acc:.3f}" for name, acc in result["per_class_accuracy"].items()),
    )
    log.info("confusion matrix, evaluation.json and TensorBoard logs in %s", run_dir)
    return result


@hydra.main(version_base="1.3", config_path="../../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with exit_on_user_error(), held(run_dir, what="evaluation"), removed_on_error(run_dir, new=is_empty(run_dir)):
        if (run_dir / "evaluation.json").exists():
            raise UserError(f"{run_dir} already holds an evaluation; pick a new hydra.run.dir")
        evaluate(cfg)


if __name__ == "__main__":
    run_app(main)
