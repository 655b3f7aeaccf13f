"""Every measured figure a page quotes is a value of docs/figures.md, the one table `make figures` writes.

A measured-looking figure is, in the README and each docs/*.md page outside fenced code blocks and inline code
(commands, settings and transcripts of a command's output), either
- an accuracy: a number 0 or 1 with exactly four decimals, e.g. 0.4243 (`ACCURACY`), or
- a time: a number with its unit, s, ms, min, minute(s), second(s), h or hour(s), e.g. `18.1 s`, `3 minutes`
  (`TIME`), unless a bound names it: "under 2 s", "more than 10 minutes", "over", "above", "within", "at most",
  "at least" (a setting or a promise, not a measurement).
Such a figure must be, as written, the value of a row of docs/figures.md. A page writes each time with its unit
(a table's cell too: `45.6 s`), so that this check sees it. `NOT_FROM_THE_TABLE` lists what is not covered yet.
No training: the table is read, not measured."""

import re

import pytest
from conftest import REPO

from benchmarks.figures import FIGURES_PAGE, MEASUREMENTS, read_table

PAGES = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != FIGURES_PAGE.name)]
FENCE = re.compile(r"^```.*?^```$", re.M | re.S)
CODE = re.compile(r"`[^`]+`")
ACCURACY = re.compile(r"(?<![\w.])[01]\.\d{4}(?![\w.])")
TIME = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[–-]\d+(?:\.\d+)?)? ?(?:ms|s|min|minutes?|seconds?|h|hours?)(?![\w])")
BOUND = re.compile(r"\b(?:under|more than|over|above|within|at most|at least)\s+$")

# Figures no command of benchmarks/figures.py measures yet, by page: None for the whole page, else the figures.
NOT_FROM_THE_TABLE = {
    # the SLURM grid's times need a SLURM cluster, which this command does not start; [0.9926, 1.0000] is the
    # Clopper-Pearson formula's interval for 500 of 500 images right, an example of it, not a measurement
    "docs/sweeps.md": {"54 s", "129 s", "66 s", "0.9926", "1.0000"},
    # searches and `make bench` figures: each takes tens of minutes to measure again on this CPU
    "docs/search.md": None,
    "docs/speed.md": None,
    "docs/characters.md": {"4.3 minutes"},  # 10 epochs on the characters
    # figures quoted from elsewhere, not measured here: a report's (training.md) and airbench's own (glossary.md)
    "docs/training.md": {"3.7 h"},
    "docs/glossary.md": {"2.59 s", "3.09 s"},
}


def blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def quoted_figures(text: str) -> list[tuple[int, str]]:
    """(line, figure) for each measured-looking figure of a page's text, in the sense of this module's docstring."""
    prose = CODE.sub(blank, FENCE.sub(blank, text))
    found = [(m.start(), m.group(0)) for m in ACCURACY.finditer(prose)]
    found += [(m.start(), m.group(0)) for m in TIME.finditer(prose) if not BOUND.search(prose[: m.start()])]
    return sorted((prose.count("\n", 0, start) + 1, " ".join(figure.split())) for start, figure in found)


def page_figures() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        name = str(page.relative_to(REPO))
        exempt = NOT_FROM_THE_TABLE.get(name, set())
        if exempt is not None:
            found += [
                (f"{name}:{line}", figure) for line, figure in quoted_figures(page.read_text()) if figure not in exempt
            ]
    return found


@pytest.fixture(scope="module")
def table_values() -> set[str]:
    return {row.value for row in read_table(FIGURES_PAGE)}


@pytest.mark.parametrize(("where", "figure"), page_figures(), ids=[f"{w} {f}" for w, f in page_figures()])
def test_a_quoted_figure_is_in_the_measured_table(where: str, figure: str, table_values: set[str]) -> None:
    assert figure in table_values, (
        f"{where} quotes {figure}, which docs/figures.md does not hold: measure it with "
        "`.venv/bin/python -m benchmarks.figures --only NAME` and quote the table's value"
    )


def test_the_exemptions_name_pages_that_exist_and_figures_they_still_quote() -> None:
    for name, figures in NOT_FROM_THE_TABLE.items():
        assert (REPO / name).is_file(), f"NOT_FROM_THE_TABLE names {name}, which does not exist"
        quoted = {figure for _, figure in quoted_figures((REPO / name).read_text())}
        assert figures is None or figures <= quoted, f"{name} no longer quotes {figures - quoted}: drop them here"


def test_the_pattern_sees_accuracies_and_times_but_not_bounds_or_code() -> None:
    text = (
        "test/acc 0.4243 in 18.1 s, 3 minutes; the URL in under 2 s; lr 0.001, 75.18%\n"
        "`accuracy 0.5000 in 9 s`\n```\nval/acc_best=0.4400 12.0 s\n```\n| `resnet18` | 0.4640 | 199.6 s |\n"
    )
    assert quoted_figures(text) == [(1, "0.4243"), (1, "18.1 s"), (1, "3 minutes"), (6, "0.4640"), (6, "199.6 s")]


def test_the_table_names_its_machine_and_each_row_its_command() -> None:
    text = FIGURES_PAGE.read_text()
    assert re.search(r"^Machine: .*cores.*torch \S+.*Lightning \S+", text, re.M), "the table names no machine"
    for row in read_table(FIGURES_PAGE):
        assert row.command.startswith((".venv/bin/python -m ", "make ")), f"{row.name} has no command: {row.command}"


def printed_commands() -> set[str]:
    """Each command line of the pages' bash blocks, a line continued with a backslash joined to the next."""
    found = set()
    for page in PAGES:
        for block in re.finditer(r"^```bash\n(.*?)^```$", page.read_text(), re.M | re.S):
            found |= {" ".join(line.split("#")[0].split()) for line in block.group(1).replace("\\\n", " ").splitlines()}
    return found


def test_each_measured_command_is_one_a_page_prints() -> None:
    printed = printed_commands()
    for measurement in MEASUREMENTS:
        for command in measurement.commands:
            assert command in printed, f"{measurement.name} runs `{command}`, which no page prints: print it as run"


@pytest.fixture
def fake_measuring(tmp_path, monkeypatch):
    """benchmarks.figures writing into tmp_path, each measurement's figures a value per call instead of a training."""
    from benchmarks import figures

    (tmp_path / "slice" / "cifar-10-batches-py").mkdir(parents=True)
    monkeypatch.setattr(figures, "FIGURES_PAGE", tmp_path / "figures.md")
    calls = []

    def measure(measurement, data_root):
        calls.append(measurement.name)
        return [("test/acc", f"0.{len(calls):04d}", measurement.commands[0])]

    monkeypatch.setattr(figures, "measure", measure)
    return figures, ["--data-root", str(tmp_path / "slice")], calls


def test_only_measures_the_named_figures_again_and_keeps_the_others(fake_measuring) -> None:
    figures, data, calls = fake_measuring
    figures.main(data)
    figures.main([*data, "--only", "readme_sweep"])
    names = [m.name for m in figures.MEASUREMENTS]
    assert calls == [*names, "readme_sweep"]
    measured = {f"{name}: test/acc": f"0.{i:04d}" for i, name in enumerate(names, 1)}
    measured["readme_sweep: test/acc"] = f"0.{len(names) + 1:04d}"
    assert {row.name: row.value for row in read_table(figures.FIGURES_PAGE)} == measured


def test_only_on_another_machine_than_the_tables_is_refused(fake_measuring, capsys) -> None:
    figures, data, calls = fake_measuring
    figures.main(data)
    text = figures.FIGURES_PAGE.read_text()
    figures.FIGURES_PAGE.write_text(re.sub(r"^Machine: .*$", "Machine: another CPU", text, flags=re.M))
    with pytest.raises(SystemExit) as stop:
        figures.main([*data, "--only", "first_run"])
    assert stop.value.code == 2 and len(calls) == len(figures.MEASUREMENTS)
    assert "was measured on another CPU" in capsys.readouterr().err
    assert "Machine: another CPU" in figures.FIGURES_PAGE.read_text()  # nothing written
