"""A run without a validation split (`data.val_size=0`), decided here once: whether a run has one, what needs one,
and what a run without one is monitored and ranked by. The trainer's build, the config checks, the datamodule, the
checkpoint callback, the HParams summary and the tables ask these functions."""

RANKED_WITHOUT_VALIDATION = "test/acc"  # the tested last weights' accuracy: the only one such a run measures


def has_validation(val_size: object) -> bool:
    """Whether `data.val_size` holds training images out for validation (0: every one is trained on)."""
    return val_size != 0


def needs_validation(metric: str) -> bool:
    """Whether `metric` is one that only a validation split computes (val/acc, val/acc_best, …)."""
    return str(metric).startswith("val/")


def fit_validates(trainer) -> bool:
    """Whether a Lightning trainer's fit runs validation: not when it runs no validation batch, which a run
    without a validation split sets (`limit_val_batches=0`); its checkpoint callback then monitors nothing and
    keeps last.ckpt alone, the weights it tests."""
    return trainer.limit_val_batches != 0


def ranked_metric(validation: bool, optimized: str = "val/acc_best") -> str:
    """The metric that ranks a run: the `optimized` one with a validation split, test/acc without one."""
    return optimized if validation else RANKED_WITHOUT_VALIDATION
