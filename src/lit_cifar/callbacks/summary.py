"""The model summary at the start of fitting: the net's layers, not the module's metric objects."""

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch.nn.modules.loss import _Loss
from torchmetrics import Metric


class _LayersOnly(ModelSummary):
    @property
    def named_modules(self) -> list:
        return [(name, m) for name, m in super().named_modules if not isinstance(m, Metric | _Loss)]


class LayerSummary(RichModelSummary):
    """Rich's summary table with one row per layer of the net down to `max_depth` (the LightningModule is
    depth 0, its `net` depth 1); the loss and the metrics the module holds have no parameters and are left out.

    Lightning (2.6) counts FLOPs only in a forward pass over the module's `example_input_array`, which ours does
    not set, and draws its FLOPs column and total anyway: a 0 on every row. They are shown when it counted some."""

    def _summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ModelSummary:
        return _LayersOnly(pl_module, max_depth=self._max_depth)

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        if total_flops:
            RichModelSummary.summarize(
                summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                total_flops, **summarize_kwargs,
            )  # fmt: skip
            return
        from lightning.pytorch.utilities.model_summary.model_summary import (
            get_formatted_model_size,
            get_human_readable_count,
        )
        from rich import get_console
        from rich.table import Table

        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        for name, _ in columns:
            table.add_column(
                name,
                style="dim" if name == " " else None,
                justify="left" if name in (" ", "Name", "Type", "Mode") else "right",
            )
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        totals = [
            ("Trainable params", get_human_readable_count(trainable_parameters)),
            ("Non-trainable params", get_human_readable_count(total_parameters - trainable_parameters)),
            ("Total params", get_human_readable_count(total_parameters)),
            ("Total estimated model params size (MB)", get_formatted_model_size(model_size)),
            ("Modules in train mode", total_training_modes["train"]),
            ("Modules in eval mode", total_training_modes["eval"]),
        ]
        for name, value in totals:
            console.print(f"[bold]{name}[/]: {str(value).strip()}")  # counts are padded
