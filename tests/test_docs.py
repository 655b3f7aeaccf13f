"""The README and the pages in docs/: every relative link reaches a file and every #anchor a heading of it, and
every command they quote (in a ```bash block, or inline code that starts with `python -m …` or `make …`) still
parses: its module or make target exists, and its overrides compose against conf/. No network, no training."""

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONFIG_OF = {"lit_cifar.train": "train", "lit_cifar.evaluate": "evaluate", "lit_cifar.predict": "predict",
             "lit_cifar.tune": "tune"}  # fmt: skip
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"(?:\S*python -m ([\w.]+)|\bmake ([\w-]+))(.*)")
PLACEHOLDERS = {"…", "..."}  # an elided value in prose, e.g. make sweep ARGS="…"


def blank(match: re.Match) -> str:
    """The match's text as spaces, its line breaks kept, so offsets still give line numbers."""
    return re.sub(r"[^\n]", " ", match.group(0))


def prose(text: str) -> str:
    return CODE.sub(blank, FENCE.sub(blank, text))


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), re.M)
    return {slug(h.replace("`", "")) for h in headings}


def links() -> list[tuple[str, Path, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in LINK.finditer(prose(text)):
            if not re.match(r"[a-z]+:", m.group(1)):
                found.append((f"{page.relative_to(REPO)}:{line_of(text, m.start())}", page, m.group(1)))
    return found


def commands() -> list[tuple[str, str]]:
    """(file:line, command line) for each command a page quotes."""
    found = []
    for page in PAGES:
        text, name = page.read_text(), page.relative_to(REPO)
        for block in FENCE.finditer(text):
            if block.group(1) == "bash":
                first = line_of(text, block.start(2))
                for i, line in enumerate(block.group(2).replace("\\\n", "  ").splitlines()):
                    if COMMAND.search(line):
                        found.append((f"{name}:{first + i}", line))
        for m in CODE.finditer(FENCE.sub(blank, text)):
            if COMMAND.match(m.group(1)):
                found.append((f"{name}:{line_of(text, m.start())}", m.group(1).replace("\n", " ")))
    return found


@pytest.mark.parametrize(("where", "page", "target"), links(), ids=[w for w, _, _ in links()])
def test_a_link_reaches_its_file_and_heading(where, page, target):
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{where}: {target} links to a file that does not exist"
    if anchor and file.suffix == ".md":
        assert anchor in anchors(file), f"{where}: {target}: {file.name} has no heading with the anchor #{anchor}"


def first_values(overrides: list[str]) -> list[str]:
    """Hydra's parse of each override, hydra's own left out and a sweep cut to its first value."""
    kept = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.key_or_group.startswith("hydra"):
            continue
        if not o.is_sweep_override():
            kept.append(o.input_line)
        else:
            value = o.value()
            first = value.start if isinstance(value, IntervalSweep) else next(o.sweep_string_iterator())
            kept.append(f"{o.get_key_element()}={first}")
    return kept


def check_composes(config: str, args: list[str]) -> None:
    cli = get_args_parser().parse_args(args)  # the flags (-m, --cfg job, …) as Hydra's command line reads them
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        compose(config, first_values(cli.overrides))


class Parsed(Exception):
    pass


def check_argparse(module: str, args: list[str], monkeypatch) -> None:
    """The command's own argparse parser takes the arguments; it stops there, so nothing runs."""
    parse = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, *a, **k):
        raise Parsed(parse(self, *a, **k))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    try:
        importlib.import_module(module).main(args)
    except Parsed:
        return
    except SystemExit as stop:  # argparse refused them (2), or printed --help (0)
        assert stop.code == 0, f"{module} does not take these arguments"


def check(module: str, args: list[str], monkeypatch) -> None:
    args = [a for a in args if a not in PLACEHOLDERS]
    if module in CONFIG_OF:
        check_composes(CONFIG_OF[module], args)
    elif module == "lit_cifar.rerun":  # SWEEP_DIR, then overrides of the sweep's train command and --top/--seeds
        assert args and not args[0].startswith("-"), "rerun takes the sweep dir first"
        flags = {"--top": "hydra.sweeper.confirm.top", "--seeds": "hydra.sweeper.confirm.seeds"}
        rest, overrides = args[1:], []
        while rest:
            word = rest.pop(0)
            overrides.append(f"{flags[word]}={rest.pop(0)}" if word in flags else word)
        check_composes("train", ["-m", *overrides])
    else:
        check_argparse(module, args, monkeypatch)


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))


@pytest.mark.parametrize(("where", "line"), commands(), ids=[w for w, _ in commands()])
def test_a_quoted_command_still_parses(where, line, monkeypatch):
    module, target, rest = COMMAND.search(line).groups()
    try:
        words = shlex.split(rest, comments=True)
        if module:
            check(module, words, monkeypatch)
        else:
            assert target in make_targets(), f"the Makefile has no target {target}"
            args = shlex.split(dict(w.split("=", 1) for w in words if re.match(r"[A-Z]+=", w)).get("ARGS", ""))
            if target in ("train", "sweep"):
                check("lit_cifar.train", ["-m"] * (target == "sweep") + args, monkeypatch)
    except (Exception, SystemExit) as error:
        pytest.fail(f"{where}: {line.strip()}\n  {type(error).__name__}: {error}")


SECTION_REFERENCE = re.compile(r'\((README|docs/[\w-]+\.md)(?:, "([^"]+)")?\)')
ANCHOR_REFERENCE = re.compile(r"\b(README(?:\.md)?|docs/[\w-]+\.md)#([\w-]+)")


def config_references(conf: Path = REPO / "conf") -> list[tuple[str, str, str | None]]:
    """Every `(README, "Section")`, `(docs/page.md, "Section")`, `README#anchor` or `docs/page.md#anchor` a config
    file's comment points to, as (where, page, the section's anchor or None)."""
    found = []
    for path in sorted(conf.rglob("*.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            comment, where = line.partition("#")[2], f"{path.relative_to(conf.parent)}:{number}"
            found += [(where, m.group(1), m.group(2) and slug(m.group(2))) for m in SECTION_REFERENCE.finditer(comment)]
            found += [(where, m.group(1), m.group(2)) for m in ANCHOR_REFERENCE.finditer(comment)]
    return found


def test_a_config_comment_names_a_section_in_either_form(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.yaml").write_text(
        'x: 1  # see README#a-first-run, (docs/data.md, "The split") and docs/speed.md#gpu\n'
    )
    assert sorted(config_references(tmp_path / "conf")) == [
        ("conf/a.yaml:1", "README", "a-first-run"),
        ("conf/a.yaml:1", "docs/data.md", "the-split"),
        ("conf/a.yaml:1", "docs/speed.md", "gpu"),
    ]


@pytest.mark.parametrize("where,page,anchor", config_references())
def test_a_config_comment_names_a_section_that_exists(where: str, page: str, anchor: str | None) -> None:
    target = REPO / (page if page.endswith(".md") else "README.md")
    assert target.is_file(), f"{where} points to {page}, which does not exist"
    if anchor:
        assert anchor in anchors(target), f"{where} points to the section #{anchor} of {page}, which it lacks"
