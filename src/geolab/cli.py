"""The ``geolab`` command.

``geolab gate``, ``geolab plots``, ``geolab params`` and ``geolab docs`` work on the whole project;
``geolab <study> ...`` runs a study's user-facing commands (``predict`` and the like). Each
command lives next to its code and is imported only when it is called, so ``geolab --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command -> ("module:function taking argv and returning an exit code", one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "gate": ("geolab.reporting.gate:gate_main", "compare metrics with floors and a base revision"),
    "plots": ("geolab.reporting.plots:plots_main", "render the declared DVC plots to PNG offline"),
    "params": ("geolab.common.params:params_main", "validate params.yaml and print it resolved"),
    "docs": ("geolab.reporting.docs:docs_main", "rewrite the docs' generated result tables"),
    "ner": ("geolab.ner.cli:main", "mountain names in text: `geolab ner predict TEXT`"),
    "seg": ("geolab.seg.cli:main", "segment an aerial image: `geolab seg predict IMG --out MASK`"),
    "match": ("geolab.match.cli:main", "match two images: `geolab match pair A B --out PNG`"),
    "geoloc": (
        "geolab.geoloc.cli:main",
        "locate 4-view photos: `geolab geoloc predict DIR --out CSV`",
    ),
}


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts and sizes: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _usage() -> str:
    lines = ["usage: geolab COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`geolab COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``geolab COMMAND ...`` to the command's own ``main(argv)``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from geolab import __version__

        print(f"geolab {__version__}")
        return 0
    name = argv.pop(0)
    if name not in COMMANDS:
        print(f"geolab: unknown command '{name}'; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, _, func = COMMANDS[name][0].partition(":")
    code = getattr(importlib.import_module(module), func)(argv)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
