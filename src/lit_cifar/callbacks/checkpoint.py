"""ModelCheckpoint that a crash, a kill or a cluster pre-emption cannot turn into lost or corrupt work."""

import os
import random
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_cifar.run.validation_split import fit_validates


class ResumableCheckpoint(ModelCheckpoint):
    """Five additions to ModelCheckpoint:

    - `last.ckpt` at the end of every epoch, whatever the monitored metric did (ModelCheckpoint writes it
      only in epochs that saved a top-k file), and never mid-epoch: a run stopped by a signal or a kill goes
      on from its last finished epoch and ends with the numbers of an uninterrupted run;
    - every file is written next to its final name and moved over it with `os.replace`. Lightning's
      own save stages the file in the system temp dir and `shutil.move`s it, which is a plain copy when
      that dir is on another filesystem, so a kill during the copy would leave a truncated `last.ckpt`;
    - the random generators' states travel in the checkpoint, so a resumed run draws the same data
      order, augmentation and dropout as an uninterrupted one;
    - a fit without validation (`trainer.limit_val_batches=0`, which `data.val_size=0` sets) monitors
      nothing and keeps `last.ckpt` alone, rather than warning every epoch that the monitored metric is missing;
    - `{epoch}` in file names counts from 1.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before a resume restores this callback's state, which is filed under a key that names the monitor.
        if not fit_validates(trainer):
            self.monitor, self.save_top_k = None, 0
        super().setup(trainer, pl_module, stage)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        partial = f"{filepath}.partial"
        try:
            super()._save_checkpoint(trainer, partial)
        except BaseException:  # a full disk, Ctrl-C: no half-written file left behind
            Path(partial).unlink(missing_ok=True)
            raise
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        self._last_checkpoint_saved = filepath

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # top-k (and last with it) when val/acc improved
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):  # not saved at this step yet
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _monitor_candidates(self, trainer: pl.Trainer) -> dict[str, torch.Tensor]:
        candidates = super()._monitor_candidates(trainer)
        return {**candidates, "epoch": candidates["epoch"] + 1}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "rng_states": rng_states()}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._only_own_files()
        if "rng_states" in state_dict:
            set_rng_states(state_dict["rng_states"])

    def _only_own_files(self) -> None:
        """The checkpoints a restored state names, each as the file of that name in this run's own folder, or
        forgotten: a checkpoint's state (a moved run's, or one crafted to name another run's file) never picks
        the weights this run tests."""
        own = Path(self.dirpath).resolve() if self.dirpath else None

        def here(path: str) -> str:
            found = own / Path(path).name if own and path else None
            return str(found) if found and found.is_file() else ""

        self.best_model_path, self.last_model_path = here(self.best_model_path), here(self.last_model_path)
        self.kth_best_model_path = here(self.kth_best_model_path)
        self.best_k_models = {here(path): score for path, score in self.best_k_models.items() if here(path)}


# Lightning has private helpers for these, but they keep numpy's state as an ndarray, which a
# `torch.load(weights_only=True)` (Lightning's default when testing the best checkpoint) refuses.
def rng_states() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # The training GPU's generator alone (Lightning made it the current device): a resumed job may train on
        # another GPU, or where fewer are visible.
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    cuda = states["cuda"]
    if isinstance(cuda, list):  # saved before: one state per GPU visible then, the training GPU's first
        cuda = cuda[0] if cuda else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
