"""Metric gate: fail a run whose metrics fall below a floor or regress against a base revision.

The ``gate`` section of ``params.yaml`` lists the gated metrics::

    gate:
      rev: HEAD                      # base revision to compare with (default HEAD)
      metrics:
        - file: dvclive/metrics.json
          key: test/accuracy         # dvclive's slash path; "test.accuracy" works too
          direction: max             # higher is better
          floor: 0.80                # absolute floor (a ceiling for direction: min)
          tolerance: 0.01            # allowed absolute worsening vs the base revision

The workspace value is read from the file itself; the base value comes from
``dvc metrics diff --json --all REV`` and, where DVC does not know the metric (the file is not
declared under ``metrics:`` at that revision, or DVC is unavailable), from ``git show REV:path``.
A base revision that lacks the file or key gives ``ok (no base)``: a new metric is not a failure.
A base value that cannot be read (the file does not parse, the value is not a finite number) is
not a failure either, but the status says so (``ok (base unreadable: ...)``), since the
tolerance was not checked.
The section's schema (:class:`~geolab.common.params.GateParams`) lives with the other params
schemas, since every stage validates the whole params file.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from geolab.common.io import OutputPathError, check_output_path, write_json
from geolab.common.params import DEFAULT_PATH, GatedMetric, GateParams, ParamsError, load_section
from geolab.reporting.repo import RepoError, check_revision, git, run_dvc

log = logging.getLogger(__name__)

OK = "ok"
NO_BASE = "ok (no base)"
FAIL = "FAIL"

#: Tolerance comparisons forgive float noise such as 0.9 - 0.8 = 0.09999999999999998.
_REL_EPS = 1e-9
_ABS_EPS = 1e-12


@dataclass
class GateRow:
    """The verdict for one gated metric.

    Attributes:
        name: display name.
        file: metrics file.
        key: key as configured.
        direction: ``max`` or ``min``.
        value: workspace value (``None`` when missing).
        base: value at the base revision (``None`` when the revision lacks it).
        delta: ``value - base`` (``None`` without both).
        floor: configured floor/ceiling.
        tolerance: configured tolerance.
        status: ``ok``, ``ok (no base)``, ``ok (base unreadable: ...)`` or a message starting
            with ``FAIL:``.
    """

    name: str
    file: str
    key: str
    direction: str
    value: float | None
    base: float | None
    delta: float | None
    floor: float | None
    tolerance: float | None
    status: str

    @property
    def failed(self) -> bool:
        """Whether this metric fails the gate."""
        return self.status.startswith(FAIL)


# --------------------------------------------------------------------------- reading metrics


def _parse_metrics(text: str, path: str) -> Any:
    """Parse a metrics file by its suffix (JSON by default, as dvclive writes)."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def _flatten(data: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every value in nested mappings by path: ``{("t",): {...}, ("t", "accuracy"): 0.9}``.

    Inner mappings are listed too, so that a key naming one is found (and reported as not a
    number) rather than "not found".
    """
    out: dict[tuple[str, ...], Any] = {prefix: data} if prefix else {}
    if isinstance(data, Mapping):
        for k, v in data.items():
            out.update(_flatten(v, (*prefix, str(k))))
    return out


def lookup(data: Any, key: str) -> tuple[bool, Any]:
    """Find a slash or dotted key in nested metrics.

    Args:
        data: the parsed metrics file.
        key: ``test/accuracy`` or ``test.accuracy`` (a literal key containing dots also works).

    Returns:
        ``(found, value)``.
    """
    for parts, value in _flatten(data).items():
        if "/".join(parts) == key or ".".join(parts) == key:
            return True, value
    return False, None


def _one_line(err: BaseException) -> str:
    """An exception's message on one line (YAML errors span several)."""
    return " ".join(str(err).split())


def _describe(value: Any) -> str:
    """What a non-number is, for a status: ``a mapping (keys a, b)``, ``a list`` or ``'text'``."""
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        more = f", ... ({len(keys)} keys)" if len(keys) > 5 else ""
        return f"a mapping (keys {', '.join(keys[:5])}{more}); give the full key"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def read_base_with_git(path: str, rev: str, repo_root: Path) -> Any | None:
    """Read a metrics file as it was at ``rev`` with ``git show``.

    Args:
        path: file path relative to ``repo_root``.
        rev: the revision.
        repo_root: the repository root.

    Returns:
        The parsed file, or ``None`` if the revision lacks it.

    Raises:
        ValueError: the file is there but cannot be parsed (the message names file and rev).
    """
    proc = git(["show", f"{rev}:./{PurePosixPath(path).as_posix()}"], repo_root)
    if proc.returncode != 0:
        log.debug("git show %s:%s: %s", rev, path, proc.stderr.decode(errors="replace").strip())
        return None
    try:
        return _parse_metrics(proc.stdout.decode("utf-8"), path)
    except (ValueError, yaml.YAMLError) as err:
        log.warning("%s at %s: cannot parse: %s", path, rev, err)
        raise ValueError(f"{path} at {rev}: {_one_line(err)}") from err


def dvc_metrics_diff(rev: str, repo_root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Run ``dvc metrics diff --json --all REV``.

    Args:
        rev: the base revision.
        repo_root: the DVC repository root.

    Returns:
        ``{file: {dotted_key: {"old": x, "new": y, "diff": d}}}``; empty if DVC is unavailable
        or fails (the caller then falls back to ``git show``).
    """
    try:
        proc = run_dvc(["metrics", "diff", "--json", "--all", rev], repo_root)
        data = json.loads(proc.stdout or "{}")
    except (RepoError, ValueError) as err:
        log.warning("dvc metrics diff unavailable, falling back to git show: %s", err)
        return {}
    return {str(PurePosixPath(f)): v for f, v in data.items() if isinstance(v, dict)}


def _base_from_diff(diff: Mapping[str, Mapping[str, Any]], metric: GatedMetric) -> tuple[bool, Any]:
    """Find a metric's old value in ``dvc metrics diff`` output (keys are dotted)."""
    entries = diff.get(str(PurePosixPath(metric.file)), {})
    for dkey in (metric.key, metric.key.replace("/", ".")):
        entry = entries.get(dkey)
        if isinstance(entry, Mapping) and entry.get("old") is not None:
            return True, entry["old"]
    return False, None


# --------------------------------------------------------------------------- verdicts


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _exceeds(amount: float, limit: float) -> bool:
    """``amount > limit`` beyond float noise."""
    return amount > limit and not math.isclose(amount, limit, rel_tol=_REL_EPS, abs_tol=_ABS_EPS)


def judge(metric: GatedMetric, value: float, base: float | None) -> str:
    """Decide the status of a metric whose workspace value is a number.

    Args:
        metric: the configuration.
        value: workspace value.
        base: base value, or ``None``.

    Returns:
        ``ok``, ``ok (no base)`` or a ``FAIL: ...`` message (several joined by ``; ``).
    """
    if math.isnan(value):
        return f"{FAIL}: value is NaN"
    if math.isinf(value):
        return f"{FAIL}: value is {value} (not a finite number)"
    fails = []
    if metric.floor is not None:
        if metric.direction == "max" and value < metric.floor:
            fails.append(f"{FAIL}: below floor ({_fmt(value)} < {_fmt(metric.floor)})")
        elif metric.direction == "min" and value > metric.floor:
            fails.append(f"{FAIL}: above ceiling ({_fmt(value)} > {_fmt(metric.floor)})")
    if base is not None and metric.tolerance is not None:
        worse = base - value if metric.direction == "max" else value - base
        if _exceeds(worse, metric.tolerance):
            fails.append(
                f"{FAIL}: regressed by {_fmt(worse)} (> tolerance {_fmt(metric.tolerance)})"
            )
    if fails:
        return "; ".join(fails)
    return OK if base is not None else NO_BASE


def _workspace_value(metric: GatedMetric, repo_root: Path) -> tuple[Any, str | None]:
    """Read the workspace value; returns ``(value, failure message or None)``."""
    path = repo_root / metric.file
    try:
        data = _parse_metrics(path.read_text(encoding="utf-8"), metric.file)
    except FileNotFoundError:
        return None, f"{FAIL}: missing (file {metric.file} not found)"
    except IsADirectoryError:
        return None, f"{FAIL}: unreadable ({metric.file}: is a directory)"
    except OSError as err:
        return None, f"{FAIL}: unreadable ({metric.file}: {err.strerror or err})"
    except (ValueError, yaml.YAMLError) as err:
        return None, f"{FAIL}: unreadable ({metric.file}: {_one_line(err)})"
    found, value = lookup(data, metric.key)
    if not found:
        return None, f"{FAIL}: missing (key '{metric.key}' not found in {metric.file})"
    number = _as_number(value)
    if number is None:
        return None, f"{FAIL}: not a number ('{metric.key}' in {metric.file} is {_describe(value)})"
    return number, None


def _base_value(
    metric: GatedMetric, diff: Mapping[str, Mapping[str, Any]], rev: str, repo_root: Path
) -> tuple[float | None, str | None]:
    """Get the base value from the DVC diff, else ``git show``.

    Returns:
        ``(value, None)``; ``(None, None)`` if the rev lacks the file or key; ``(None, why)``
        if it has them but no usable number (the file does not parse, the value is not a
        number or not finite).
    """
    found, raw = _base_from_diff(diff, metric)
    if not found:
        try:
            data = read_base_with_git(metric.file, rev, repo_root)
        except ValueError as err:
            return None, f"base unreadable: {err}"
        found, raw = lookup(data, metric.key) if data is not None else (False, None)
    if not found:
        return None, None
    base = _as_number(raw)
    if base is None:
        return None, f"base unreadable: '{metric.key}' at {rev} is {_describe(raw)}"
    if not math.isfinite(base):
        log.warning("%s: base value at %s is %s; treating as no base", metric.label, rev, base)
        return None, f"base unreadable: '{metric.key}' at {rev} is {base}"
    return base, None


def evaluate_gate(params: GateParams, rev: str | None, repo_root: Path) -> list[GateRow]:
    """Check every gated metric of the workspace against its floor and the base revision.

    Args:
        params: the ``gate`` section.
        rev: base revision; ``None`` uses ``params.rev``.
        repo_root: the DVC/git repository root; metric files are relative to it.

    Returns:
        One row per gated metric, in configuration order.

    Raises:
        RepoError: the base revision does not exist.
    """
    rev = rev or params.rev
    repo_root = Path(repo_root)
    if not params.metrics:
        log.warning("gate: no metrics configured")
        return []
    check_revision(rev, repo_root)
    diff = dvc_metrics_diff(rev, repo_root)
    rows = []
    for metric in params.metrics:
        value, failure = _workspace_value(metric, repo_root)
        base, base_problem = _base_value(metric, diff, rev, repo_root)
        if failure is None:
            status = judge(metric, value, base)
            if status == NO_BASE and base_problem:  # not a failure, but not silent either
                status = f"{OK} ({base_problem})"
        else:
            status = failure
        delta = value - base if value is not None and base is not None else None
        rows.append(
            GateRow(
                name=metric.label,
                file=metric.file,
                key=metric.key,
                direction=metric.direction,
                value=value,
                base=base,
                delta=delta,
                floor=metric.floor,
                tolerance=metric.tolerance,
                status=status,
            )
        )
    return rows


# --------------------------------------------------------------------------- output


def summary(rows: Sequence[GateRow]) -> str:
    """One line such as ``gate: 2 ok, 1 FAILED``."""
    failed = sum(row.failed for row in rows)
    return f"gate: {len(rows) - failed} ok, {failed} FAILED"


def format_table(rows: Sequence[GateRow]) -> str:
    """Render rows as a plain aligned text table followed by the summary line.

    Args:
        rows: from :func:`evaluate_gate`.

    Returns:
        The table (no trailing newline).
    """
    header = ["metric", "dir", "value", "base", "delta", "floor", "tol", "status"]
    body = [
        [
            r.name,
            r.direction,
            _fmt(r.value),
            _fmt(r.base),
            "-" if r.delta is None else f"{r.delta:+.6g}",
            _fmt(r.floor),
            _fmt(r.tolerance),
            r.status,
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6}

    def fmt_line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    lines = [fmt_line(header), "  ".join("-" * w for w in widths)]
    lines += [fmt_line(cells) for cells in body]
    lines.append(summary(rows))
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def rows_to_json(rows: Sequence[GateRow], rev: str) -> dict[str, Any]:
    """JSON-able report: ``{"rev", "passed", "summary", "rows": [...]}`` (NaN becomes null)."""
    return {
        "rev": rev,
        "passed": not any(r.failed for r in rows),
        "summary": summary(rows),
        "rows": [
            {k: _json_safe(v) for k, v in asdict(r).items()} | {"failed": r.failed} for r in rows
        ],
    }


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geolab gate",
        description="Fail when gated metrics fall below their floor or regress vs a base revision.",
    )
    parser.add_argument("--rev", help="base revision (default: gate.rev of the params file)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PATH, help="params file")
    parser.add_argument("--json", type=Path, dest="json_out", help="also write the rows as JSON")
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="repository root (default: current dir)"
    )
    return parser


def gate_main(argv: list[str] | None = None) -> int:
    """Run the metric gate from the command line.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        0 when every metric passes, 1 when one fails, 2 when the gate cannot run (bad params
        file, unknown revision, not a git repository, a ``--json`` path no file can be written
        at).
    """
    args = _parser().parse_args(argv)
    try:
        if args.json_out is not None:
            check_output_path(args.json_out)
        params = load_section("gate", args.params)
        rev = args.rev or params.rev
        rows = evaluate_gate(params, rev, args.repo)
    except (ParamsError, RepoError, OutputPathError) as err:
        print(f"gate: error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if args.json_out is not None:
        write_json(args.json_out, rows_to_json(rows, rev))
    return 1 if any(r.failed for r in rows) else 0
