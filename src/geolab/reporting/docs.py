"""Keep the numbers in docs/ equal to the files the pipeline wrote.

A doc marks each generated part with a pair of HTML comments::

    <!-- generated: seg-results -->
    ...tables written by a study's ``report`` function...
    <!-- /generated: seg-results -->

``geolab docs`` rewrites every such block from the results files; ``geolab docs --check`` (run by
the tests) fails when a block is out of date, so a doc can never quote a stale metric.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from geolab.common.io import atomic_open

#: doc path (relative to the repo root) -> "module:function" returning {block name: markdown}.
REPORTS: dict[str, str] = {
    "docs/seg/baseline-performance.md": "geolab.reporting.seg:blocks",
    "docs/match.md": "geolab.reporting.match:blocks",
    "docs/geoloc.md": "geolab.reporting.geoloc:blocks",
    "docs/ner.md": "geolab.reporting.ner:blocks",
}

_BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated: (?P=name) -->)",
    re.S,
)
#: Any start or end marker, also a misspelled name or spacing (checked by :func:`check_markers`).
_MARKER = re.compile(r"<!--\s*(?P<end>/?)\s*generated\s*:\s*(?P<name>.*?)\s*-->")


class DocsError(ValueError):
    """The generated blocks of a doc do not match its generator: names the doc, block and line."""


def check_markers(text: str, where: str = "doc") -> None:
    """Check that every start marker is closed by its own end marker, on a later line.

    Raises:
        DocsError: a start marker without its end marker (missing, misspelled, or another
            block's), an end marker without a start marker, a nested start, or a marker not
            written exactly as ``<!-- generated: NAME -->`` alone on its line.
    """
    open_name, open_line = None, 0
    for number, line in enumerate(text.split("\n"), 1):
        for m in _MARKER.finditer(line):
            name, end = m["name"], bool(m["end"])
            exact = f"<!-- {'/' if end else ''}generated: {name} -->"
            if not re.fullmatch(r"[\w-]+", name) or line.strip() != exact:
                raise DocsError(
                    f"{where}: line {number}: block '{name}': write the marker alone "
                    f"on its line as '{exact}' (a name of letters, digits, _ and -)"
                )
            if end and open_name is None:
                raise DocsError(f"{where}: line {number}: end of block '{name}' without a start")
            if end and name != open_name:
                raise DocsError(
                    f"{where}: line {number}: end of block '{name}', but block "
                    f"'{open_name}' (line {open_line}) is open"
                )
            if not end and open_name is not None:
                raise DocsError(
                    f"{where}: line {number}: block '{name}' starts inside block "
                    f"'{open_name}' (line {open_line}), which is not closed"
                )
            open_name, open_line = (None, 0) if end else (name, number)
    if open_name is not None:
        raise DocsError(
            f"{where}: line {open_line}: block '{open_name}' is not closed (no "
            f"'<!-- /generated: {open_name} -->' after it)"
        )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats get 3 decimals."""

    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def diff_range(diff: Mapping[str, float] | None) -> str:
    """A paired difference from the seeds benchmark as "mean [min, max]", signed; "" if absent."""
    if not diff:
        return ""
    return f"{diff['mean']:+.3f} [{diff['min']:+.3f}, {diff['max']:+.3f}]"


def fill(text: str, blocks: Mapping[str, str], where: str = "doc") -> str:
    """Replace the body of each generated block with ``blocks[name]``.

    Raises:
        DocsError: the markers are broken (:func:`check_markers`), a block in the doc has no
            generator, or a generated block is missing from the doc (each names the doc, the
            block and, where there is one, the line).
    """
    check_markers(text, where)
    seen = set()

    def repl(m: re.Match) -> str:
        name, line = m["name"], text.count("\n", 0, m.start()) + 1
        if name not in blocks:
            raise DocsError(
                f"{where}: line {line}: no generator for block '{name}'; "
                f"it makes {', '.join(map(repr, blocks)) or 'none'}"
            )
        seen.add(name)
        body = blocks[name] if blocks[name].endswith("\n") else blocks[name] + "\n"
        return m.group(1) + body + m.group(4)

    out = _BLOCK.sub(repl, text)
    missing = [name for name in blocks if name not in seen]
    if missing:
        names = ", ".join(map(repr, missing))
        raise DocsError(
            f"{where}: {'block' if len(missing) == 1 else 'blocks'} {names} "
            f"{'is' if len(missing) == 1 else 'are'} not in the doc "
            f"(add '<!-- generated: {missing[0]} -->' and '<!-- /generated: {missing[0]} -->')"
        )
    return out


def _generator(ref: str) -> Callable[[Path], Mapping[str, str]]:
    module, func = ref.split(":")
    return getattr(importlib.import_module(module), func)


def update(root: Path, check: bool = False) -> list[str]:
    """Regenerate every registered doc under ``root``; return the docs that changed (or would).

    Every doc is checked before any is written.

    Raises:
        DocsError: a doc cannot be read or its blocks do not match its generator.
    """
    changed = {}
    for rel, ref in REPORTS.items():
        path = root / rel
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DocsError(f"{rel}: cannot read: {getattr(err, 'strerror', None) or err}") from err
        new = fill(text, _generator(ref)(root), rel)
        if new != text:
            changed[rel] = new
    if not check:
        for rel, new in changed.items():
            with atomic_open(root / rel) as fh:
                fh.write(new)
    return list(changed)


def docs_main(argv: list[str] | None = None) -> int:
    """``geolab docs [--check]``: rewrite (or check) the generated blocks of the docs."""
    p = argparse.ArgumentParser(prog="geolab docs", description=docs_main.__doc__)
    p.add_argument("--root", type=Path, default=Path("."))
    p.add_argument("--check", action="store_true", help="exit 1 if a doc is out of date")
    args = p.parse_args(argv)
    try:
        changed = update(args.root, check=args.check)
    except DocsError as err:
        print(f"docs: error: {err}", file=sys.stderr)
        return 2
    for rel in changed:
        verb = "out of date (run `geolab docs`)" if args.check else "updated"
        print(f"{rel}: {verb}", file=sys.stderr)
    return 1 if (args.check and changed) else 0
