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
        KeyError: a block in the doc has no generator, or a generated block is missing from
            the doc (names the doc and the block).
    """
    seen = set()

    def repl(m: re.Match) -> str:
        name = m["name"]
        if name not in blocks:
            raise KeyError(f"{where}: no generator for block '{name}'")
        seen.add(name)
        body = blocks[name] if blocks[name].endswith("\n") else blocks[name] + "\n"
        return m.group(1) + body + m.group(4)

    out = _BLOCK.sub(repl, text)
    missing = set(blocks) - seen
    if missing:
        raise KeyError(f"{where}: blocks {sorted(missing)} are not in the doc")
    return out


def _generator(ref: str) -> Callable[[Path], Mapping[str, str]]:
    module, func = ref.split(":")
    return getattr(importlib.import_module(module), func)


def update(root: Path, check: bool = False) -> list[str]:
    """Regenerate every registered doc under ``root``; return the docs that changed (or would)."""
    changed = []
    for rel, ref in REPORTS.items():
        path = root / rel
        text = path.read_text(encoding="utf-8")
        new = fill(text, _generator(ref)(root), rel)
        if new != text:
            changed.append(rel)
            if not check:
                with atomic_open(path) as fh:
                    fh.write(new)
    return changed


def docs_main(argv: list[str] | None = None) -> int:
    """``geolab docs [--check]``: rewrite (or check) the generated blocks of the docs."""
    p = argparse.ArgumentParser(prog="geolab docs", description=docs_main.__doc__)
    p.add_argument("--root", type=Path, default=Path("."))
    p.add_argument("--check", action="store_true", help="exit 1 if a doc is out of date")
    args = p.parse_args(argv)
    changed = update(args.root, check=args.check)
    for rel in changed:
        verb = "out of date (run `geolab docs`)" if args.check else "updated"
        print(f"{rel}: {verb}", file=sys.stderr)
    return 1 if (args.check and changed) else 0
