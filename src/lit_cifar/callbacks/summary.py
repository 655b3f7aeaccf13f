"""The model summary at the start of fitting: the net's layers, not the module's metric objects."""

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
    depth 0, its `net` depth 1); the loss and the metrics the module holds have no parameters and are left out."""

    def _summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ModelSummary:
        return _LayersOnly(pl_module, max_depth=self._max_depth)
