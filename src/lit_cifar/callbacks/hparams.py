"""The run's hyperparameters in every logger, and in TensorBoard's HParams with the same columns for every run."""

import time
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
from torch.utils.tensorboard import SummaryWriter

NOT_APPLICABLE = "n/a"
FIT_TIME = "time/fit_s"
CONFIG_SUFFIX = ".hparams_config"  # the event file that holds a log dir's experiment config


def _summary(tag: str, data: HParamsPluginData) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def experiment_config(
    numbers: Sequence[str], texts: Sequence[str], metrics: Sequence[str], shown: Sequence[str]
) -> Summary:
    """TensorBoard's experiment config: every column, its type, and the metrics. Without one, TensorBoard takes
    the columns from the runs it reads (a column whose values differ in type becomes text, a value left out hides
    its column); with several, it takes the first it finds, so every run writes the same one.

    TensorBoard orders the columns by their `differs` flag, then by name, and its table shows the first five
    until more are ticked: the columns in `shown` are flagged, so they are those five."""
    kinds = [(n, api_pb2.DATA_TYPE_FLOAT64) for n in numbers] + [(n, api_pb2.DATA_TYPE_STRING) for n in texts]
    infos = [api_pb2.HParamInfo(name=n, type=kind, differs=n in shown) for n, kind in kinds]
    experiment = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics]
    )
    return _summary(metadata.EXPERIMENT_TAG, HParamsPluginData(experiment=experiment))


class HParamsSummary(Callback):
    """The same columns in every run: `numbers` (name → a number every run has) and `texts` (name → a name, or a
    value some runs do not have, such as the gamma of a step schedule: written as text, `n/a` where it does not
    apply). Every logger gets them when fitting starts, so a run still going or failed shows them too. `shown`:
    the five columns TensorBoard's HParams table shows before others are ticked.

    TensorBoard: the run's hyperparameters (HParams' session) when fitting starts, its status (success, or
    failure on an error) when it ends; the metric columns are the last values of the run's scalars `metrics`
    (val/acc_best, test/acc, and the seconds fitting took, logged here to every logger). The experiment config
    goes into the log dir's root (a sweep's `tensorboard/`, a single run's own), once."""

    def __init__(
        self,
        numbers: dict[str, float],
        texts: dict[str, object],
        shown: Sequence[str] = (),
        metrics: Sequence[str] = ("val/acc_best", "test/acc", FIT_TIME),
    ) -> None:
        self.numbers, self.texts, self.metrics, self.shown = dict(numbers), dict(texts), list(metrics), list(shown)
        self.hparams = {
            **self.numbers,
            **{name: NOT_APPLICABLE if value is None else str(value) for name, value in self.texts.items()},
        }
        self._fit_started = 0.0

    def _tensorboards(self, trainer: pl.Trainer) -> list[TensorBoardLogger]:
        """The TensorBoard loggers that write: rank 0's (the other ranks of a ddp run hold stand-ins)."""
        if not trainer.is_global_zero:
            return []
        return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.perf_counter()
        for logger in trainer.loggers:
            if not isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(self.hparams)
        if not trainer.is_global_zero:
            return
        start = SessionStartInfo(start_time_secs=time.time())
        for name, value in self.hparams.items():
            if isinstance(value, str):
                start.hparams[name].string_value = value
            else:
                start.hparams[name].number_value = value
        for logger in self._tensorboards(trainer):
            root = Path(logger.root_dir)
            if not list(root.glob(f"events.out.tfevents.*{CONFIG_SUFFIX}")):
                with SummaryWriter(str(root), filename_suffix=CONFIG_SUFFIX) as writer:
                    writer.file_writer.add_summary(
                        experiment_config(self.numbers, self.texts, self.metrics, self.shown)
                    )
            logger.experiment.file_writer.add_summary(
                _summary(metadata.SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start))
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            logger.log_metrics({FIT_TIME: time.perf_counter() - self._fit_started}, step=trainer.global_step)

    def _end(self, trainer: pl.Trainer, status: int) -> None:
        end = HParamsPluginData(session_end_info=SessionEndInfo(status=status, end_time_secs=time.time()))
        for logger in self._tensorboards(trainer):
            # The writer Lightning closed when fitting ended is reopened by the next scalar logged; an error
            # in the test before any leaves it closed (file_writer None), and _get_file_writer reopens it.
            logger.experiment._get_file_writer().add_summary(_summary(metadata.SESSION_END_INFO_TAG, end))
            logger.experiment.flush()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, api_pb2.STATUS_SUCCESS)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, Exception):  # not a stop by a signal or Ctrl-C, which a resume goes on from
            self._end(trainer, api_pb2.STATUS_FAILURE)
