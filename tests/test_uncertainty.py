"""A table ranks with the uncertainty it has, on sweep folders with known metrics (no training): the intervals,
the `tied` marks and the `best:` line, checked against values computed by hand."""

import json

import pytest
from omegaconf import OmegaConf
from test_report import make_run, make_sweep

from lit_cifar.reporting import table
from lit_cifar.reporting.stats import estimate, t_quantile
from lit_cifar.run.commands import python


def result(metrics: dict, images: int = 500, status: str = "ok") -> dict:
    return {"status": status, "metrics": metrics, "images": {"val": images, "test": 846}}


def test_the_intervals_by_hand():
    assert t_quantile(2) == pytest.approx(12.706, abs=1e-3) and t_quantile(3) == pytest.approx(4.303, abs=1e-3)
    one = estimate([0.4], 500, accuracy=True)  # Clopper-Pearson, 200 of 500: scipy's binomtest, method="exact"
    assert (one.mean, one.n, one.low, one.high) == (
        0.4,
        1,
        pytest.approx(0.35676, abs=1e-5),
        pytest.approx(0.44443, abs=1e-5),
    )
    assert str(one) == "0.4000 [0.3568, 0.4444]"
    seeds = estimate([0.50, 0.54, 0.58], None, accuracy=True)  # sd 0.04: 4.303 * 0.04 / sqrt(3) = 0.09937
    assert (seeds.mean, seeds.n) == (pytest.approx(0.54), 3) and str(seeds) == "0.5400 ± 0.0994"
    assert (seeds.low, seeds.high) == (pytest.approx(0.54 - 0.09937, abs=1e-4), pytest.approx(0.54 + 0.09937, abs=1e-4))
    assert estimate([0.9], 500, accuracy=False).interval is None  # one loss: no formula gives an interval
    assert estimate([0.4], None, accuracy=True).interval is None  # a run that recorded no image count
    every = estimate([1.0], 500, accuracy=True)  # all right: [(0.025)^(1/500), 1], not a point
    assert (every.low, every.high) == (pytest.approx(0.025 ** (1 / 500)), 1.0)


def read_best(out: str) -> list[str]:
    lines = out.split("\nbest: ", 1)[1].split("\n\nwritten into")[0]
    return ("best: " + lines).splitlines()


def test_one_seed_a_difference_inside_the_noise_of_500_images_is_a_tie_and_the_best_line_names_it(tmp_path, capsys):
    """The issue's grid: 0.382 and 0.362 on 500 validation images, 2 points apart where one standard error is
    2.2 points; 0.300 is 8 points behind."""
    sweep = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3,5e-3")
    for lr, acc in (("0.001", 0.362), ("0.002", 0.382), ("0.005", 0.300)):
        make_run(sweep / f"optim.lr={lr}", [f"optim.lr={lr}"], result({"val/acc_best": acc, "test/acc": acc}))
    rows = table.write_report(sweep)
    # Clopper-Pearson: 191 of 500 right [0.3392, 0.4262], 181 [0.3198, 0.4058], 150 [0.2601, 0.3423]. Against 191,
    # the two-proportion z-test: 181, p 0.51; 150, p 0.0060, told apart once Holm's correction doubles it (0.012).
    assert [(r["job"], r["vs best"], str(r["95% interval"])) for r in rows] == [
        ("optim.lr=0.002", "best", "[0.3392, 0.4262]"),
        ("optim.lr=0.001", "tied (p 0.51)", "[0.3198, 0.4058]"),
        ("optim.lr=0.005", "worse (p 0.012)", "[0.2601, 0.3423]"),
    ]
    assert read_best(capsys.readouterr().out)[:2] == [
        "best: optim.lr=0.002, val/acc_best=0.3820 [0.3392, 0.4262] (exact binomial, 500 images)",
        "  not told apart from it at 5% (Holm-adjusted p): optim.lr=0.001 0.3620 [0.3198, 0.4058] (p 0.51)",
    ]
    markdown = (sweep / "results.md").read_text()
    assert "the exact binomial (Clopper-Pearson) interval of its accuracy on its 500 validation images" in markdown

    # On CIFAR-10's 10,000 test images the same numbers are told apart: 3820 of 10,000 against 3620, p 0.0034.
    for folder in sweep.glob("optim.lr=*"):
        record = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps(record | {"images": {"val": 10000, "test": 846}}))
    assert [r["vs best"] for r in table.write_report(sweep)] == ["best", "worse (p 0.0034)", "worse (p < 0.001)"]
    assert read_best(capsys.readouterr().out)[1] == "  every other setting is worse at 5% (Holm-adjusted)"


def test_several_seeds_rank_by_their_mean_with_a_t_interval_and_a_pruned_seed_is_left_out(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3", "seed=0,1,2")
    values = {("0.001", 0): 0.50, ("0.001", 1): 0.54, ("0.001", 2): 0.58, ("0.002", 0): 0.66, ("0.002", 1): 0.70}
    for (lr, seed), acc in values.items():
        name = f"optim.lr={lr},seed={seed}"
        make_run(sweep / name, [f"optim.lr={lr}", f"seed={seed}"], result({"val/acc_best": acc, "test/acc": acc}))
    pruned = {"status": "pruned", "reason": "pruned after epoch 1", "metrics": {"val/acc_best": 0.1}}
    make_run(sweep / "optim.lr=0.002,seed=2", ["optim.lr=0.002", "seed=2"], pruned)
    table.write_report(sweep)
    by_setting = (sweep / "results.md").read_text().split("## By setting\n\n")[1].split("\n## ")[0]
    # 0.002: mean 0.68, sd 0.02828 over n = 2: 12.706 * 0.02828 / sqrt(2) = 0.2541. Paired with 0.001 on seeds 0 and
    # 1 (the pruned seed 2 left out), it is 0.16 better at both: no spread in the differences, told apart.
    assert by_setting.splitlines()[-2:] == [
        "| 0.002 | 2 | 0.6800 ± 0.2541 | 0.6800 ± 0.2541 | best | seed=2 pruned |",
        "| 0.001 | 3 | 0.5400 ± 0.0994 | 0.5400 ± 0.0994 | worse (p < 0.001) |  |",
    ]
    best = read_best(capsys.readouterr().out)
    assert best[0] == "best: optim.lr=0.002, val/acc_best=0.6800 ± 0.2541 (t, n=2)"
    assert best[1] == "  every other setting is worse at 5% (Holm-adjusted)"
    assert best[3].endswith(f"{python()} -m lit_cifar.train optim.lr=0.002 seed=1")  # its best run's own overrides


def test_a_loss_ranks_lowest_first(tmp_path, capsys):
    """A search that minimizes val/loss: the table ranks by it, downward; one run of a loss has no interval, and
    several seeds give it one."""
    sweep = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3,5e-3")
    config = OmegaConf.load(sweep / "multirun.yaml")
    config.optimized_metric = "val/loss"
    OmegaConf.save(config, sweep / "multirun.yaml")
    for lr, loss in (("0.001", 1.9), ("0.002", 1.2), ("0.005", 1.5)):
        metrics = {"val/loss": loss, "val/acc_best": 0.9 - loss / 3, "test/acc": 0.4}
        make_run(sweep / f"optim.lr={lr}", [f"optim.lr={lr}"], result(metrics))
    rows = table.write_report(sweep)
    assert [(r["job"], r["val/loss"], r["vs best"]) for r in rows] == [
        ("optim.lr=0.002", 1.2, "best"),
        ("optim.lr=0.005", 1.5, "untested"),
        ("optim.lr=0.001", 1.9, "untested"),
    ]
    out = capsys.readouterr().out
    assert "| job | optim.lr | best_epoch | val/loss | 95% interval | vs best | val/acc_best | test/acc |" in out
    assert read_best(out)[:2] == [
        "best: optim.lr=0.002, val/loss=1.2000 (no interval)",
        "  untested against it (one run each has no test): optim.lr=0.005 1.5000, optim.lr=0.001 1.9000; run more "
        "seeds",
    ]

    for lr, seed, loss in (("0.002", 1, 1.4), ("0.005", 1, 1.7)):  # a second seed, as a confirmation names it
        metrics = {"val/loss": loss, "val/acc_best": 0.5, "test/acc": 0.4}
        make_run(sweep / f"optim.lr={lr},seed={seed}", [f"optim.lr={lr}", f"seed={seed}"], result(metrics))
    table.write_report(sweep)
    # 0.002: 1.2 and 1.4, mean 1.3, 12.706 * 0.1414 / sqrt(2) = 1.2706; 0.005: 1.5 and 1.7, mean 1.6, the same
    # half-width, one shared seed: Welch's t-test, p 0.168; 0.001's one loss, 1.9, against 0.002's seeds: Student's
    # t, p 0.179. Holm: 0.168 x 2 = 0.336, and 0.179 raised to it.
    assert read_best(capsys.readouterr().out)[:2] == [
        "best: optim.lr=0.002, val/loss=1.3000 ± 1.2706 (t, n=2)",
        "  not told apart from it at 5% (Holm-adjusted p): optim.lr=0.005 1.6000 ± 1.2706 (p 0.34), optim.lr=0.001 "
        "1.9000 (p 0.34)",
    ]
