"""Override lines (`key=value`, `+key=value`, `~key`, `key=a,b`), read with Hydra's own parser, here only:
every command, the sweep, the search and the report read them through these functions."""

from functools import cache

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, ListConfig, OmegaConf


def as_typed(lines: ListConfig | DictConfig) -> list[str] | dict:
    """Override lines (or sweeper params) as typed: their interpolations stay unresolved, since resolving
    one such as the sweep dir's `${lit_cifar.claim:…}` would claim another folder."""
    return OmegaConf.to_container(lines, resolve=False)


@cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


def parse(lines: list[str]) -> list[Override]:
    """Hydra's parsed overrides (an OverrideParseException names the line it cannot read)."""
    return _parser().parse_overrides(list(lines))


def key_of(line: str) -> str:
    """The key (or group) that an override line sets, without its `+`, `++` or `~`."""
    return parse([line])[0].key_or_group


def overrides_of(lines: list[str], as_written: bool = False) -> dict[str, str]:
    """{key: value} of override lines that set a value, each value written as Hydra's sweeper writes a job's
    (`1e-3` as `0.001`), so that a single run and a sweep's job that set the same compare equal; a sweep
    (`a=1,2`), and every value with `as_written`, as the line has it."""
    return {o.key_or_group: _value(o, as_written) for o in parse(lines) if not o.is_delete()}


def _value(override: Override, as_written: bool) -> str:
    if as_written or override.is_sweep_override():
        return override.input_line.split("=", 1)[1]
    return override.get_value_element_as_str()


def last_of_each(lines: list[str]) -> dict[str, Override]:
    """Each key's last override (a later line replaces an earlier one for the same key), in order."""
    last: dict[str, Override] = {}
    for override in parse(lines):
        last.pop(override.key_or_group, None)
        last[override.key_or_group] = override
    return last


def without_keys(lines: list[str], keys: set[str] | tuple[str, ...]) -> list[str]:
    """`lines` less those that set one of `keys`."""
    return [line for line, override in zip(lines, parse(lines), strict=True) if override.key_or_group not in keys]
