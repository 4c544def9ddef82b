"""Loading and validating ``params.yaml``.

Every section of ``params.yaml`` has a schema: a dataclass whose fields are the keys of that
section (and, by convention, the keyword arguments of the code the section feeds). A schema is
registered in :data:`SECTIONS` by a lazy ``"module:Class"`` reference so that loading one study's
params never imports another study.

Validation is strict: an unknown section or key, a missing required key or a value of the wrong
type raises :class:`ParamsError` naming the file and the dotted key, e.g.
``params.yaml: cls.lr: expected float, got str 'fast'``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")

#: Section name -> "module:Class" of its schema. Studies add their section here.
SECTIONS: dict[str, str] = {
    "base": "geolab.common.params:BaseParams",
    "gate": "geolab.common.params:GateParams",
    "cls": "geolab.cls.config:ClsParams",
    "ner": "geolab.ner.config:NerParams",
    "seg": "geolab.seg.config:SegParams",
    "match": "geolab.match.config:MatchParams",
    "geoloc": "geolab.geoloc.config:GeolocParams",
}

DEFAULT_PATH = Path("params.yaml")


class ParamsError(ValueError):
    """A params file is malformed: the message names the file and the key."""


@dataclasses.dataclass
class BaseParams:
    """The ``base`` section, shared by every stage.

    Attributes:
        seed: seed for Python, NumPy and torch.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        threads: torch intra-op threads; 0 leaves torch's default.
        data: ``sample`` (the embedded sample, offline) or ``full`` (the user's full data).
        deterministic: ask torch for deterministic algorithms.
    """

    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0
    data: Literal["sample", "full"] = "sample"
    deterministic: bool = True


@dataclasses.dataclass
class GatedMetric:
    """One gated metric (an item of ``gate.metrics``).

    Attributes:
        file: metrics file relative to the repository root (JSON, YAML or TOML).
        key: slash path (``test/accuracy``, dvclive naming) or dotted path (``test.accuracy``).
        direction: ``max`` if higher is better, ``min`` if lower is better.
        floor: absolute floor for ``max`` (ceiling for ``min``); ``None`` for no bound.
        tolerance: allowed absolute worsening vs the base revision; ``None`` to not compare.
        name: display name; defaults to ``file:key``.
    """

    file: str
    key: str
    direction: Literal["max", "min"]
    floor: float | None = None
    tolerance: float | None = None
    name: str = ""

    def validate(self) -> None:
        """Check values the type system cannot.

        Raises:
            ValueError: empty file or key, negative or non-finite tolerance, NaN floor.
        """
        if not self.file.strip():
            raise ValueError("file: must not be empty")
        if not self.key.strip("/. "):
            raise ValueError("key: must not be empty")
        if self.tolerance is not None and not (
            self.tolerance >= 0 and math.isfinite(self.tolerance)
        ):
            raise ValueError(f"tolerance: must be a finite number >= 0, got {self.tolerance!r}")
        if self.floor is not None and math.isnan(self.floor):
            raise ValueError("floor: must not be NaN")

    @property
    def label(self) -> str:
        """The display name: ``name`` or ``file:key``."""
        return self.name or f"{self.file}:{self.key}"


@dataclasses.dataclass
class GateParams:
    """The ``gate`` section of ``params.yaml``.

    Attributes:
        rev: base revision that ``tolerance`` is measured against (any git revision).
        metrics: the gated metrics.
    """

    rev: str = "HEAD"
    metrics: list[GatedMetric] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        """Check that display names are unique.

        Raises:
            ValueError: two metrics share a display name.
        """
        seen: set[str] = set()
        for metric in self.metrics:
            if metric.label in seen:
                raise ValueError(f"metrics: duplicate metric '{metric.label}'; set distinct names")
            seen.add(metric.label)
        if not self.rev.strip():
            raise ValueError("rev: must not be empty")


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-3`` (as `dvc exp run -S` writes)."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping repeats a key (DVC's YAML reader refuses such a file)."""


class _StrictLoader(_Yaml12Loader):
    """:class:`_Yaml12Loader` that refuses a key repeated in a mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}  # key -> its line
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" may repeat keys
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.get(key)
            except TypeError:  # unhashable: the base class reports it
                continue
            if line is not None:
                problem = f"duplicate key '{key}' (first on line {line + 1})"
                raise _DuplicateKeyError(None, None, problem, key_node.start_mark)
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_error(err: yaml.YAMLError, text: str) -> str:
    """``line L, column C: ...`` for a YAML error (1-based, as editors count)."""
    if isinstance(err, yaml.reader.ReaderError):
        line = text.count("\n", 0, err.position)
        column = err.position - text.rfind("\n", 0, err.position) - 1
        what = f"unacceptable character #x{err.character:04x}: {err.reason}"  # an int for str
        return f"line {line + 1}, column {column + 1}: not valid YAML: {what}"
    if not isinstance(err, yaml.MarkedYAMLError) or (err.problem_mark or err.context_mark) is None:
        return f"not valid YAML: {err}"
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    if isinstance(err, _DuplicateKeyError):
        return f"{where}: {err.problem}"
    what = err.problem or err.context
    if err.problem and err.context:
        what += f" ({err.context}"
        if err.context_mark is not None and err.context_mark.line != mark.line:
            what += f" that starts on line {err.context_mark.line + 1}"
        what += ")"
    return f"{where}: not valid YAML: {what}"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with YAML 1.2 floats.

    Args:
        path: the file.

    Returns:
        The mapping (empty for an empty file).

    Raises:
        ParamsError: the file is missing, unreadable or not UTF-8, is not valid YAML (the
            message gives line and column), repeats a key in one mapping, or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ParamsError(f"{path}: file not found") from err
    except IsADirectoryError as err:
        raise ParamsError(f"{path}: is a directory, not a params file") from err
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise ParamsError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: {_yaml_error(err, text)}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def schema_for(section: str) -> type:
    """Return the schema dataclass registered for a section.

    Raises:
        ParamsError: the section is unknown; the message lists the valid ones.
    """
    try:
        ref = SECTIONS[section]
    except KeyError:
        raise ParamsError(
            f"unknown section '{section}'; valid sections: {', '.join(sorted(SECTIONS))}"
        ) from None
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types.

    Args:
        cls: a dataclass type.
        data: the mapping from YAML.
        where: the dotted location used in error messages (``file: section.key``).

    Returns:
        An instance of ``cls``.

    Raises:
        ParamsError: unknown key, missing required key, or wrong type.
    """
    if not isinstance(data, Mapping):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(
            f"{where}.{unknown[0]}: unknown key; valid keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{where}.{name}: required key is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as err:
            raise ParamsError(f"{where}: {err}") from err
    return obj


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check (and lightly coerce: int -> float, list -> tuple) one value against a type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, args, where)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ParamsError(f"{where}: expected one of {list(args)}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        kt, vt = args or (Any, Any)
        return {_convert(k, kt, where): _convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    return _convert_scalar(value, hint, where)


def _convert_union(value: Any, args: tuple, where: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg, where)
        except ParamsError as err:
            errors.append(str(err).split(": ", 1)[-1])
    raise ParamsError(f"{where}: {' or '.join(errors)}")


def _convert_scalar(value: Any, hint: type, where: str) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ParamsError(
            f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def load_section(section: str, path: str | Path = DEFAULT_PATH) -> Any:
    """Load and validate one section of a params file.

    Args:
        section: the section name, e.g. ``"cls"``.
        path: the params file.

    Returns:
        The section's schema instance (defaults filled in where the file omits a key).
    """
    data = read_yaml(path)
    if section not in data and section != "base":
        raise ParamsError(f"{path}: section '{section}' is missing")
    value = data.get(section)
    return from_dict(schema_for(section), {} if value is None else value, f"{path}: {section}")


def load_params(path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    """Load and validate every section of a params file.

    Args:
        path: the params file.

    Returns:
        Section name -> schema instance.

    Raises:
        ParamsError: an unknown section, unknown key or wrong type, naming file and key.
    """
    data = read_yaml(path)
    out = {}
    for section, value in data.items():
        try:
            schema = schema_for(section)
        except ParamsError as err:
            raise ParamsError(f"{path}: {err}") from None
        out[section] = from_dict(schema, {} if value is None else value, f"{path}: {section}")
    out.setdefault("base", BaseParams())
    return out


def check_sections(
    params: Mapping[str, Any], path: str | Path, sections: Iterable[str] | None = None
) -> None:
    """Check that the sections the pipeline reads are there, as each stage checks its own.

    Args:
        params: section name -> value (from :func:`load_params`).
        path: the params file, for the message.
        sections: the sections needed; default every registered one (each study's stages and
            the gate read their section; ``base`` has defaults and is never needed).

    Raises:
        ParamsError: ``FILE: section 'seg' is missing`` (or all the missing ones).
    """
    needed = SECTIONS if sections is None else sections
    missing = [s for s in needed if s != "base" and s not in params]
    if len(missing) == 1:
        raise ParamsError(f"{path}: section '{missing[0]}' is missing")
    if missing:
        raise ParamsError(f"{path}: sections {', '.join(map(repr, missing))} are missing")


def to_dict(obj: Any) -> Any:
    """Turn a schema instance (or nested structure of them) into plain YAML/JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def params_main(argv: list[str] | None = None) -> int:
    """``geolab params [--params FILE] [--section S] [--preset P [--set-args | --apply]]``.

    Validate and print the resolved params; like the stages, it needs every section (with
    ``--section``, that one). With ``--preset``, lay a preset over them first and validate the
    merged whole: ``--set-args`` prints ``-S key=value`` arguments for ``dvc exp run``,
    ``--apply`` writes the preset's keys into the params file.
    """
    import argparse
    import sys

    from geolab.common import presets

    p = argparse.ArgumentParser(prog="geolab params", description=params_main.__doc__)
    p.add_argument("--params", default=str(DEFAULT_PATH))
    p.add_argument("--section", help="print only this section")
    p.add_argument("--preset", help="a partial params file laid over --params")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--set-args", action="store_true", help="print `-S k=v` for dvc exp run")
    how.add_argument("--apply", action="store_true", help="write the preset into --params")
    args = p.parse_args(argv)
    if (args.set_args or args.apply) and not args.preset:
        p.error("--set-args and --apply need --preset")
    printing = not (args.set_args or args.apply)
    try:
        if args.section is not None and printing:
            try:
                schema_for(args.section)
            except ParamsError as err:
                raise ParamsError(f"--section: {err}") from None
        if args.preset:
            preset, params = presets.resolve(args.params, args.preset)
        else:
            params = load_params(args.params)
        check_sections(params, args.params, [args.section] if args.section and printing else None)
        if args.set_args:
            print(" ".join(presets.set_args(preset)))
            return 0
        if args.apply:
            presets.apply(args.params, preset)
            print(f"{args.params}: applied {args.preset}", file=sys.stderr)
            return 0
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    data = {k: to_dict(v) for k, v in params.items()}
    if args.section:
        data = {args.section: data[args.section]}
    print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0
