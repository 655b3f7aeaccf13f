"""What a config key may hold, read from the class (or function) its node's `_target_` names: the annotations of
its `__init__` (a dataclass: its fields), with their ranges beside them,

    dropout: Annotated[float, Range(0, 1, high_open=True, words="a probability in [0, 1)", example="0.2")] = 0.0

read from the source with `ast`. Nothing is imported: the module's file is found from its top-level package's
location (importlib.util.find_spec imports no package), so a start checks every value before torch, which these
classes import, loads. A class that passes `**kwargs` to its base is followed to the base's `__init__`."""

import ast
import importlib.machinery
import importlib.util
import math
import sys
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

SEED_MAX = 2**32 - 1  # what seed_everything (numpy's global RNG) accepts


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Range:
    """The numbers a key takes: from `low` to `high` (None: no bound), whole numbers only with `ints`; with
    `or_fraction` a fraction in (0, 1) too (a count of images or a share of them). `words` says it in the error
    line, `example` is a value that fits (or a whole override, `scheduler=onecycle`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    ints: bool = False
    or_fraction: bool = False
    words: str = ""
    example: str = ""

    def accepts(self, value: object) -> bool:
        if self.or_fraction and isinstance(value, float) and 0 < value < 1:
            return True
        if not (integer(value) if self.ints else number(value)):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def allowed(self) -> str:
        if self.words:
            return self.words
        kind = "an integer" if self.ints else "a number"
        if self.high is None:
            return f"{kind} {'>' if self.low_open else '≥'} {self.low}"
        return f"{kind} in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


class OneOf:
    """A key that takes one of `values`."""

    def __init__(self, *values: object, words: str = "", example: str = "") -> None:
        self.values, self.words = values, words
        self.example = example or str(values[0])

    def accepts(self, value: object) -> bool:
        return not isinstance(value, bool) and value in self.values

    def allowed(self) -> str:
        return self.words or " or ".join(repr(value) for value in self.values)


@dataclass(frozen=True)
class KeysOf:
    """A mapping whose keys are those that `target` (a dotted class path) takes: `muon: Annotated[dict | None,
    KeysOf("lit_cifar.training.muon.FilterMuon")]`."""

    target: str


CHECKS = {"Range": Range, "OneOf": OneOf, "KeysOf": KeysOf}
CONSTANTS = {"SEED_MAX": SEED_MAX}
PLAIN = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}
CONTAINERS = {"list": list, "tuple": list, "Sequence": list, "dict": dict, "Mapping": dict}


class Key:
    """One key a target takes: the types its value may have (None: not checked, as for a type no config value can
    have a name for), its range, the class whose `__init__` declares it (`owner`), its default and, for a
    dataclass-typed key (or `KeysOf`), the path of the class that declares its keys. Its annotation is read when first
    asked: a start reads only those of the keys its config sets."""

    def __init__(self, annotation: ast.AST | None, module: "_Module", owner: str, default: ast.AST | None) -> None:
        self._annotation, self._module, self.owner, self._default_node = annotation, module, owner, default

    @cached_property
    def _read(self) -> tuple[tuple[type, ...] | None, "Range | OneOf | None", str | None]:
        kinds, check, nested = _kinds(self._annotation, self._module)
        return (tuple(sorted(kinds, key=lambda kind: kind.__name__)) if kinds else None), check, nested

    @property
    def kinds(self) -> tuple[type, ...] | None:
        return self._read[0]

    @property
    def check(self) -> "Range | OneOf | None":
        return self._read[1]

    @property
    def nested(self) -> str | None:
        return self._read[2]

    @cached_property
    def default(self) -> object:
        try:
            return None if self._default_node is None else _literal(self._default_node)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass
class _Module:
    path: str  # dotted
    package: bool
    names: dict[str, ast.AST] = field(default_factory=dict)


def _source(dotted: str) -> Path | None:
    """The file of module `dotted` (a package's __init__.py), found without importing anything."""
    top, *parts = dotted.split(".")
    imported = sys.modules.get(top)
    spec = getattr(imported, "__spec__", None) if imported is not None else _spec_on_path(top, tuple(sys.path))
    if spec is None:
        return None
    if not parts:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    folder = Path(next(iter(spec.submodule_search_locations or []), ""))
    for part in parts[:-1]:
        folder = folder / part
    for candidate in (folder / f"{parts[-1]}.py", folder / parts[-1] / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module(dotted: str) -> _Module | None:
    path = _source(dotted)
    try:
        return None if path is None else _parsed(dotted, path, path.stat().st_mtime_ns)
    except OSError:
        return None


@cache
def _spec_on_path(top: str, path: tuple[str, ...]) -> importlib.machinery.ModuleSpec | None:
    """Where the top-level package `top` is on the Python path `path`, found without importing it."""
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


@cache
def _parsed(dotted: str, path: Path, mtime: int) -> _Module | None:
    """The module `dotted` read from `path` as it was at `mtime` (a file changed since is read again)."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None  # nothing checked here; building it says what is wrong
    module = _Module(dotted, path.name == "__init__.py")
    for statement in tree.body:
        if isinstance(statement, ast.ClassDef | ast.FunctionDef):
            module.names[statement.name] = statement
        elif isinstance(statement, ast.ImportFrom):
            for alias in statement.names:
                module.names[alias.asname or alias.name] = statement
        elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            if isinstance(statement.targets[0], ast.Name):
                module.names[statement.targets[0].id] = statement
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value:
            module.names[statement.target.id] = statement
    return module


def _imported_from(module: _Module, statement: ast.ImportFrom) -> str:
    if not statement.level:
        return statement.module or ""
    base = module.path.split(".")
    base = base if module.package else base[:-1]
    base = base[: len(base) - statement.level + 1]
    return ".".join([*base, statement.module] if statement.module else base)


def _definition(module_path: str, name: str, depth: int = 0) -> tuple[_Module, ast.AST] | None:
    """Where `name` of module `module_path` is defined (a class, a function or an assignment), following imports."""
    module = _module(module_path)
    if module is None or depth > 8:
        return None
    statement = module.names.get(name)
    if isinstance(statement, ast.ImportFrom):
        original = next(alias.name for alias in statement.names if (alias.asname or alias.name) == name)
        source = _imported_from(module, statement)
        return _definition(source, original, depth + 1)
    return None if statement is None else (module, statement)


def _locate(target: str) -> tuple[_Module, ast.AST] | None:
    """The class or function that the dotted `target` names, without importing it."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        if _source(".".join(parts[:cut])) is not None:
            return _definition(".".join(parts[:cut]), parts[cut]) if cut == len(parts) - 1 else None
    return None


def _literal(node: ast.AST) -> object:
    """The value of a literal in an annotation's metadata (numbers, strings, SEED_MAX, arithmetic on them)."""
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _literal(node.left), _literal(node.right)
        operations = {ast.Add: left.__add__, ast.Sub: left.__sub__, ast.Mult: left.__mul__, ast.Pow: left.__pow__}
        return operations[type(node.op)](right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_literal(element) for element in node.elts)
    return ast.literal_eval(node)


def _check(node: ast.AST) -> Range | OneOf | KeysOf | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CHECKS:
        args = [_literal(arg) for arg in node.args]
        return CHECKS[node.func.id](*args, **{kw.arg: _literal(kw.value) for kw in node.keywords})
    return None


def _subscript_name(node: ast.Subscript) -> str:
    value = node.value
    return value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")


def _kinds(node: ast.AST | None, module: _Module) -> tuple[set[type] | None, Range | OneOf | None, str | None]:
    """The types an annotation admits (None: unknown), its range (`Annotated[…, Range(…)]`) and, for a dataclass,
    its path. A public name imported from elsewhere (`Tensor`, `Accelerator`) is taken for a class that no config
    value is; a private one (`_PATH`) for a type alias, read where it is defined."""
    if node is None:
        return None, None, None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _kinds(ast.parse(node.value, mode="eval").body, module)
    if isinstance(node, ast.Constant) and node.value is None:
        return {type(None)}, None, None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right], module)
    if isinstance(node, ast.Subscript):
        name, inner = _subscript_name(node), node.slice
        elements = inner.elts if isinstance(inner, ast.Tuple) else [inner]
        if name == "Annotated":
            kinds, _, nested = _kinds(elements[0], module)
            metadata = [found for found in map(_check, elements[1:]) if found]
            keys_of = next((found.target for found in metadata if isinstance(found, KeysOf)), nested)
            return kinds, next((found for found in metadata if not isinstance(found, KeysOf)), None), keys_of
        if name == "Optional":
            return _union([elements[0], ast.Constant(None)], module)
        if name == "Union":
            return _union(elements, module)
        if name == "Literal":
            return {type(_literal(element)) for element in elements}, None, None
        return ({CONTAINERS[name]} if name in CONTAINERS else set()), None, None
    if isinstance(node, ast.Name):
        if node.id in PLAIN or node.id in CONTAINERS:
            return {PLAIN.get(node.id) or CONTAINERS[node.id]}, None, None
        statement = module.names.get(node.id)
        if isinstance(statement, ast.ImportFrom) and not node.id.startswith("_") and _elsewhere(module, statement):
            return set(), None, None  # not followed: reading torch's __init__ for `Tensor` would slow every start
        found = _definition(module.path, node.id)
        if found is None:
            return None, None, None
        where, statement = found
        if isinstance(statement, ast.Assign | ast.AnnAssign):  # a type alias
            return _kinds(statement.value, where)
        if isinstance(statement, ast.ClassDef) and _is_dataclass(statement):
            return {dict}, None, f"{where.path}.{statement.name}"
        return set(), None, None
    return set(), None, None  # an attribute (nn.Module), a Callable: nothing a config value is


def _elsewhere(module: _Module, statement: ast.ImportFrom) -> bool:
    """Whether `statement` imports from another top-level package than `module`'s own."""
    return _imported_from(module, statement).split(".")[0] != module.path.split(".")[0]


def _union(elements: list[ast.AST], module: _Module) -> tuple[set[type] | None, Range | OneOf | None, str | None]:
    found = [_kinds(element, module) for element in elements]
    if any(kinds is None for kinds, _, _ in found):
        return None, None, None
    check = next((check for _, check, _ in found if check), None)
    return set().union(*(kinds for kinds, _, _ in found)), check, next((n for _, _, n in found if n), None)


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any("dataclass" in ast.unparse(decorator) for decorator in node.decorator_list)


def _function_keys(module: _Module, function: ast.FunctionDef, owner: str, skip_first: bool) -> tuple[dict, bool]:
    """{name: Key} of `function`'s parameters, and whether it takes **kwargs."""
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args][1 if skip_first else 0 :]
    defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    pairs = [*zip(positional, defaults, strict=True), *zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)]
    keys = {argument.arg: Key(argument.annotation, module, owner, default) for argument, default in pairs}
    return keys, arguments.kwarg is not None


def _class_keys(module: _Module, node: ast.ClassDef, depth: int = 0) -> dict[str, Key]:
    owner = f"{module.path}.{node.name}"
    if _is_dataclass(node):
        fields = [s for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
        return {statement.target.id: Key(statement.annotation, module, owner, statement.value) for statement in fields}
    init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    keys, open_ended = ({}, True) if init is None else _function_keys(module, init, owner, skip_first=True)
    if open_ended and depth < 8:  # **kwargs (or no __init__ of its own): the base's keys
        for base in node.bases:
            name = ast.unparse(base)  # `ImageDataModule`, or a module's attribute: `torch.optim.Muon`
            found = _definition(module.path, name) if isinstance(base, ast.Name) else _locate(name)
            if found and isinstance(found[1], ast.ClassDef):
                keys = {**_class_keys(*found, depth + 1), **keys}
                break
    return keys


def declared_keys(target: str) -> dict[str, Key]:
    """{key: Key} that the class or function `target` (a dotted path, as in `_target_`) takes; empty when its source
    cannot be read (then nothing of it is checked here; Python checks it when it is built)."""
    found = _locate(target)
    if found is None:
        return {}
    module, node = found
    if isinstance(node, ast.ClassDef):
        return _class_keys(module, node)
    if isinstance(node, ast.FunctionDef):
        return _function_keys(module, node, f"{module.path}.{node.name}", skip_first=False)[0]
    return {}
