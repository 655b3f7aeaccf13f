"""The metrics a run reports and which way each is better: the one place that knows that an accuracy goes up
and a loss goes down, for the search's direction, every table's ranking and every `best:` line."""

from lit_cifar.run.errors import UserError

STAGES = ("train", "val", "test")
METRICS = (*(f"{stage}/{name}" for stage in STAGES for name in ("loss", "acc")), "val/acc_best")


def check_metric(name: str, key: str = "optimized_metric") -> None:
    if name not in METRICS:
        raise UserError(f"{key}={name} is not a metric a run reports; use one of {', '.join(METRICS)}")


def higher_is_better(name: str) -> bool:
    check_metric(name)
    return not name.endswith("/loss")


def is_accuracy(name: str) -> bool:
    """A fraction of images classified right, which a binomial interval describes (a loss is no such thing)."""
    check_metric(name)
    return name.rsplit("/", 1)[1].startswith("acc")


def direction(name: str) -> str:
    """Optuna's word for it: `maximize` or `minimize`."""
    return "maximize" if higher_is_better(name) else "minimize"


def best_first(values: list[tuple[float, object]], name: str) -> list[tuple[float, object]]:
    """(value, item) pairs sorted best first for the metric `name`."""
    return sorted(values, key=lambda pair: pair[0], reverse=higher_is_better(name))
