"""The model summary at the start of fitting: one line on the console (the net, its parameter count and size), and
the table of the net's layers (not the module's metric objects) in the run's log file."""

import io
import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import ModelSummary as Summary
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
from torch.nn.modules.loss import _Loss
from torchmetrics import Metric

from lit_cifar.run.lifecycle import to_log_files

log = logging.getLogger(__name__)


class _LayersOnly(Summary):
    @property
    def named_modules(self) -> list:
        return [(name, m) for name, m in super().named_modules if not isinstance(m, Metric | _Loss)]


def size_in_words(megabytes: float) -> str:
    return f"{megabytes:.1f} MB" if megabytes >= 0.1 else f"{megabytes * 1000:.0f} kB"


class LayerSummary(ModelSummary):
    """One row per layer of the net down to `max_depth` (the LightningModule is depth 0, its `net` depth 1); the
    loss and the metrics the module holds have no parameters and are left out.

    Lightning (2.6) counts FLOPs only in a forward pass over the module's `example_input_array`, which ours does
    not set, and draws its FLOPs column and total anyway: a 0 on every row. They are shown when it counted some."""

    def _summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Summary:
        self._net_name = type(getattr(pl_module, "net", pl_module)).__name__
        return _LayersOnly(pl_module, max_depth=self._max_depth)

    def summarize(  # Lightning's is a staticmethod; this one needs the net's name
        self,
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        frozen = total_parameters - trainable_parameters
        trainable = f" ({get_human_readable_count(trainable_parameters).strip()} trainable)" if frozen else ""
        log.info(
            "model: %s, %s parameters%s, %s",
            self._net_name, get_human_readable_count(total_parameters).strip(), trainable, size_in_words(model_size),
        )  # fmt: skip
        table = layer_table([(name, values) for name, values in summary_data if name != "FLOPs" or total_flops])
        totals = [
            ("Trainable params", get_human_readable_count(trainable_parameters)),
            ("Non-trainable params", get_human_readable_count(frozen)),
            ("Total params", get_human_readable_count(total_parameters)),
            ("Total estimated model params size (MB)", f"{model_size:,.3f}"),
            ("Modules in train mode", total_training_modes["train"]),
            ("Modules in eval mode", total_training_modes["eval"]),
            *([("Total FLOPs", get_human_readable_count(total_flops))] if total_flops else []),
        ]
        lines = [f"{name}: {str(value).strip()}" for name, value in totals]  # counts are padded
        to_log_files(log, "the model's layers:\n" + table + "\n".join(lines))


def layer_table(columns: list[tuple[str, list[str]]]) -> str:
    """Rich's table of the layers, as text."""
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name, _ in columns:
        table.add_column(name, justify="left" if name in (" ", "Name", "Type", "Mode") else "right")
    for row in zip(*(values for _, values in columns), strict=True):
        table.add_row(*row)
    text = io.StringIO()
    Console(file=text, width=200, color_system=None).print(table)
    return text.getvalue()
