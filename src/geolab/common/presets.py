"""Presets: partial params files (e.g. ``presets/seg-full.yaml``) laid over ``params.yaml``.

A preset holds only the keys it changes, section by section. It is applied in one of two ways:

- as an experiment, ``dvc exp run $(geolab params --preset presets/seg-full.yaml --set-args)``:
  the preset becomes ``-S section.key=value`` arguments, so the run is an ordinary DVC
  experiment (a diff of params.yaml);
- in place, ``geolab params --preset presets/seg-full.yaml --apply``: the keys are written into
  ``params.yaml``, keeping its comments and order, then ``dvc repro``.

Either way the merged file is validated first, so a typo in a preset is reported with its file
and key before anything runs.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from geolab.common.io import atomic_open
from geolab.common.params import BaseParams, ParamsError, from_dict, read_yaml, schema_for


def merge(
    params: dict[str, Any], preset: dict[str, Any], where: str, params_where: str = "params"
) -> dict[str, Any]:
    """Lay ``preset`` over ``params`` key by key (one level below the sections).

    Args:
        params: the params file's data.
        preset: the preset's data.
        where: the preset, for messages.
        params_where: the params file, for messages.

    Raises:
        ParamsError: a preset section, or the params section it lays over, is not a mapping.
    """
    out = copy.deepcopy(params)
    for section, values in preset.items():
        if not isinstance(values, dict):
            raise ParamsError(f"{where}: {section}: expected a mapping of keys to values")
        old = out.get(section)
        if old is not None and not isinstance(old, dict):
            raise ParamsError(
                f"{params_where}: {section}: expected a mapping, got {type(old).__name__} {old!r}"
            )
        out[section] = {**(old or {}), **values}
    return out


def validate(
    merged: dict[str, Any],
    preset: dict[str, Any],
    params_path: str | Path,
    preset_path: str | Path,
) -> dict[str, Any]:
    """Check every section of the merged params against its schema, as the stages will.

    Errors name the preset for a section it sets, else the params file.

    Returns:
        Section name -> schema instance (``base`` defaulted, as :func:`load_params` does).
    """
    out = {}
    for section, value in merged.items():
        where = preset_path if section in preset else params_path
        try:
            schema = schema_for(section)
        except ParamsError as err:
            raise ParamsError(f"{where}: {err}") from None
        out[section] = from_dict(schema, {} if value is None else value, f"{where}: {section}")
    out.setdefault("base", BaseParams())
    return out


def resolve(
    params_path: str | Path, preset_path: str | Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the preset, lay it over the params file and validate the whole result.

    Returns:
        The preset's ``{section: {key: value}}`` and the merged params (section -> schema
        instance).

    Raises:
        ParamsError: a file is unreadable, the preset sets nothing, or the merged params are
            invalid.
    """
    preset = read_yaml(preset_path)
    merged = merge(read_yaml(params_path), preset, str(preset_path), str(params_path))
    if not any(preset.values()):
        raise ParamsError(f"{preset_path}: preset sets nothing (no section with a key)")
    return preset, validate(merged, preset, params_path, preset_path)


def load(params_path: str | Path, preset_path: str | Path) -> dict[str, Any]:
    """The preset's ``{section: {key: value}}``, after checking the merged params are valid."""
    return resolve(params_path, preset_path)[0]


def set_args(preset: dict[str, Any]) -> list[str]:
    """``-S section.key=value`` arguments for ``dvc exp run`` (values in Hydra's override syntax).

    A mapping value replaces the old mapping (``-S ~k -S +k={...}``); a plain ``-S k={...}``
    would merge into it, or fail on new keys.

    Raises:
        ParamsError: a value would contain whitespace (the shell would split it).
    """
    args = []
    for section, values in preset.items():
        for key, value in values.items():
            text = hydra_value(value)
            if any(ch.isspace() for ch in text):
                raise ParamsError(f"{section}.{key}: values with spaces cannot be passed as -S")
            if isinstance(value, dict):  # replace, not merge: delete, then add
                args += ["-S", f"~{section}.{key}", "-S", f"+{section}.{key}={text}"]
            else:
                args += ["-S", f"{section}.{key}={text}"]
    return args


_BARE = re.compile(r"^[A-Za-z_][\w./-]*$")


def hydra_value(value: Any) -> str:
    """Format a YAML value the way ``dvc exp run -S`` (Hydra's override grammar) reads it back."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if _BARE.match(value) and value.lower() not in {"true", "false", "null", "nan", "inf"}:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise ParamsError(f"cannot pass a {type(value).__name__} value as -S: {value!r}")


def apply(params_path: str | Path, preset: dict[str, Any]) -> None:
    """Write the preset's keys into the params file, keeping its comments and key order.

    Raises:
        ParamsError: the params file has no sections (empty or comment-only), or a section the
            preset sets is not a mapping there.
    """
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    yaml.indent(mapping=2, sequence=4, offset=2)  # "  key:\n    - item", as params.yaml is written
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    path = Path(params_path)
    with path.open(encoding="utf-8") as fh:
        doc = yaml.load(fh)
    if not isinstance(doc, dict):  # an empty or comment-only file loads as None
        raise ParamsError(f"{path}: no sections to apply the preset to (empty file?)")
    for section, values in preset.items():
        if doc.get(section) is None:
            doc[section] = {}
        elif not isinstance(doc[section], dict):
            raise ParamsError(f"{path}: {section}: expected a mapping, got {doc[section]!r}")
        for key, value in values.items():
            doc[section][key] = value
    with atomic_open(path) as fh:
        yaml.dump(doc, fh)
