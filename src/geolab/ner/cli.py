"""``geolab ner predict``: mountains in text, as JSON, highlighted, or as an HTML page."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geolab.cli import positive_int
from geolab.common.io import OutputPathError, atomic_open, check_output_path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geolab ner", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="find mountain names in text")
    pr.add_argument("text", nargs="?", help="the text (or use --file)")
    pr.add_argument("--file", type=Path, help="read the text from a file ('-' for stdin)")
    pr.add_argument("--jsonl", action="store_true", help="one input line -> one JSON line")
    pr.add_argument("--highlight", action="store_true", help="print the text, mountains coloured")
    pr.add_argument("--html", type=Path, help="also write a highlighted HTML page")
    pr.add_argument("--model", type=Path, default=Path("models/ner"), help="trained model dir")
    pr.add_argument("--device", default="cpu")
    pr.add_argument(
        "--window-words", type=positive_int, help="words per window (default: as trained)"
    )
    pr.add_argument("--window-stride", type=positive_int, help="words between windows (as trained)")
    pr.add_argument(
        "--cased-names",
        action=argparse.BooleanOptionalAction,
        help="in cased text, drop mountains with no capital letter or digit (default: as trained)",
    )
    return p


def _read_input(args: argparse.Namespace) -> str:
    if args.file is None and args.text is None:
        raise SystemExit("geolab ner predict: give TEXT or --file")
    if args.file is not None and args.text is not None:
        raise SystemExit("geolab ner predict: give TEXT or --file, not both")
    if args.file is None:
        return args.text
    try:
        raw = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    except FileNotFoundError:
        raise SystemExit(f"{args.file}: file not found") from None
    except IsADirectoryError:
        raise SystemExit(f"{args.file}: is a directory; give a text file") from None
    except OSError as err:
        raise SystemExit(f"{args.file}: cannot read: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SystemExit(f"{args.file}: not UTF-8 text (byte {err.start})") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``geolab ner``."""
    args = _parser().parse_args(argv)
    text = _read_input(args)
    if args.html is not None:
        try:  # before any work, so a failing run prints and writes nothing
            check_output_path(args.html)
        except OutputPathError as err:
            raise SystemExit(f"geolab ner predict: {err}") from None
    from geolab.ner.predict import Tagger, highlight_html, highlight_terminal

    if not (args.model / "model.pt").exists():
        raise SystemExit(f"{args.model}/model.pt: no trained model (run `dvc repro ner_train`)")
    try:
        tagger = Tagger.from_dir(
            args.model,
            args.device,
            window_words=args.window_words,
            window_stride=args.window_stride,
            cased_names=args.cased_names,
        )
    except ValueError as err:
        raise SystemExit(f"geolab ner predict: {err}") from None
    if tagger.window_stride > tagger.window_words:
        raise SystemExit(
            f"geolab ner predict: window stride {tagger.window_stride} is larger than the window "
            f"({tagger.window_words} words): words between windows would go untagged"
        )
    texts = text.split("\n") if args.jsonl else [text]
    if args.jsonl and texts and texts[-1] == "":
        texts.pop()  # the newline that ends the last line
    results = [tagger(t) for t in texts]
    for t, groups in zip(texts, results, strict=True):
        if args.highlight:
            print(highlight_terminal(t, groups), end="" if t.endswith("\n") else "\n")
        elif args.jsonl:
            print(json.dumps(groups))  # ASCII: no raw U+2028 that would split a line
    if not args.highlight and not args.jsonl:
        print(json.dumps(results[0], ensure_ascii=False, indent=2))
    if args.html:
        with atomic_open(args.html) as fh:
            fh.write(highlight_html(texts, results))
    return 0
