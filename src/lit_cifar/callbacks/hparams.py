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

from lit_cifar.run.record import RunPruned
from lit_cifar.run.validation_split import fit_validates, ranked_metric

NOT_APPLICABLE = "n/a"
FIT_TIME = "time/fit_s"
CONFIG_SUFFIX = ".hparams_config"  # the event file that holds a log dir's experiment config
SESSION_SUFFIX = ".hparams_session"  # the event file that holds a run's session: its columns and how it ended
OUTCOME_TEXTS = ("run", "status")  # columns this callback fills in when the run ends
OUTCOME_NUMBERS = ("epochs",)


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


def _text(value: object) -> str:
    """A text column's value: `n/a` where it does not apply, a list's items joined by commas (the run's tags)."""
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(str(item) for item in value)
    return str(value)


class HParamsSummary(Callback):
    """The same columns in every run: `numbers` (name → a number every run has) and `texts` (name → a name, or a
    value some runs do not have, such as the gamma of a step schedule: written as text, `n/a` where it does not
    apply; a list, the run's tags, joined by commas). Every logger but TensorBoard gets them when fitting starts, so
    a run still going or failed shows them too. `shown`: the five columns TensorBoard's HParams table shows before
    others are ticked.

    TensorBoard gets them when the run ends (tested, pruned or failed), with what ended it: `run` (the job's short
    name: its swept values or trial, or a single run's folder), `status` (ok, pruned, failed) and `epochs`
    trained. TensorBoard keeps the first session a run dir holds, so a run stopped by a signal writes none, and a
    run that ends again (a failed job re-run) replaces the session it wrote before. The metric columns are the
    last values of the run's scalars: the ranked metric (val/acc_best, or test/acc without a validation split, as
    the tables rank) and the seconds fitting took. Not test/acc beside val/acc_best: a pruned trial has none, and
    TensorBoard's parallel coordinates leave out a run missing a shown metric. The experiment config goes into
    each run's own log dir, once: TensorBoard takes the first it finds, and lists a folder of its own (a sweep's
    `tensorboard/`) as a run that holds no data."""

    def __init__(self, numbers: dict[str, float], texts: dict[str, object], shown: Sequence[str] = ()) -> None:
        self.numbers, self.texts, self.shown = dict(numbers), dict(texts), list(shown)
        self.hparams = {**self.numbers, **{name: _text(value) for name, value in self.texts.items()}}
        self._started, self._fit_started, self._fit_time_logged = 0.0, 0.0, False

    def _tensorboards(self, trainer: pl.Trainer) -> list[TensorBoardLogger]:
        """The TensorBoard loggers that write: rank 0's (the other ranks of a ddp run hold stand-ins)."""
        if not trainer.is_global_zero:
            return []
        return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._fit_started = time.time(), time.perf_counter()
        for logger in trainer.loggers:
            if not isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(self.hparams)
        ranked = ranked_metric(fit_validates(trainer))
        for logger in self._tensorboards(trainer):
            log_dir = Path(logger.log_dir)
            if not list(log_dir.glob(f"events.out.tfevents.*{CONFIG_SUFFIX}")):
                with SummaryWriter(str(log_dir), filename_suffix=CONFIG_SUFFIX) as writer:
                    config = experiment_config(
                        [*self.numbers, *OUTCOME_NUMBERS], [*self.texts, *OUTCOME_TEXTS], [ranked, FIT_TIME], self.shown
                    )
                    writer.file_writer.add_summary(config)

    def _log_fit_time(self, trainer: pl.Trainer) -> None:
        if not self._fit_time_logged:
            self._fit_time_logged = True
            for logger in trainer.loggers:
                logger.log_metrics({FIT_TIME: time.perf_counter() - self._fit_started}, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_fit_time(trainer)

    def _end(self, trainer: pl.Trainer, status: str, epochs: int) -> None:
        start = SessionStartInfo(start_time_secs=self._started)
        for logger in self._tensorboards(trainer):
            run = logger.version or "/".join(Path(logger.save_dir).parts[-2:])  # a sweep job's name, or the run dir
            for name, value in {**self.hparams, "run": run, "status": status, "epochs": epochs}.items():
                if isinstance(value, str):
                    start.hparams[name].string_value = value
                else:
                    start.hparams[name].number_value = value
            ended = api_pb2.STATUS_FAILURE if status == "failed" else api_pb2.STATUS_SUCCESS
            end = SessionEndInfo(status=ended, end_time_secs=time.time())
            log_dir = Path(logger.log_dir)
            for earlier in log_dir.glob(f"events.out.tfevents.*{SESSION_SUFFIX}"):
                earlier.unlink()
            with SummaryWriter(str(log_dir), filename_suffix=SESSION_SUFFIX) as writer:
                writer.file_writer.add_summary(
                    _summary(metadata.SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start))
                )
                writer.file_writer.add_summary(
                    _summary(metadata.SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=end))
                )

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, "ok", trainer.current_epoch)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, Exception):  # a stop by a signal or Ctrl-C, which a resume goes on from
            return
        self._log_fit_time(trainer)
        if isinstance(exception, RunPruned):
            self._end(trainer, "pruned", exception.epoch)
        else:
            self._end(trainer, "failed", trainer.current_epoch)
