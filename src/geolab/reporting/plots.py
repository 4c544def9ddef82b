"""Offline plots: render DVC plots to PNG files and a markdown index, with no CDN.

``dvc plots show``/``diff`` write HTML that loads Vega from a CDN, which fails offline. This module
asks DVC for the Vega-Lite specs instead (``--json``), renders each with ``vl_convert`` (bundled
Vega, no network: external data URLs are refused) and copies image plots (dvclive
``log_image``) once per revision. ``<out>/index.md`` links every picture for browsing.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from geolab.common.io import atomic_open
from geolab.reporting.repo import RepoError, check_revision, run_dvc

log = logging.getLogger(__name__)

WORKSPACE = "workspace"
DEFAULT_OUT = Path("reports/plots")


class PlotsError(RuntimeError):
    """Plots could not be produced: unknown revision, DVC failure or rendering failure."""


@dataclass
class Picture:
    """One written picture, for the index.

    Attributes:
        plot_id: DVC's plot id (a file path or a ``dvc.yaml`` plot name).
        path: the written file.
        revisions: the revisions it shows.
    """

    plot_id: str
    path: Path
    revisions: list[str] = field(default_factory=list)


def safe_name(text: str) -> str:
    """Turn a plot id or revision into a file name part: ``plots/loss.tsv`` -> ``plots_loss.tsv``.

    Args:
        text: any string.

    Returns:
        Letters, digits, ``.``, ``_`` and ``-`` only; never empty.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "plot"


def _id_for_name(plot_id: str) -> str:
    """Drop the ``dvc.yaml::`` prefix DVC adds to ids when targets are given."""
    return plot_id.rsplit("::", 1)[-1]


def _dedupe(data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a bare file id that DVC also returns as ``dvc.yaml::file``.

    With targets, DVC returns a plot declared in ``dvc.yaml`` twice: once with its definition
    (``dvc.yaml::plots/acc.json``) and once as a raw file with default axes (``plots/acc.json``).
    The declared one is kept.
    """
    declared = {_id_for_name(k) for k in data if "::" in k}
    return {k: v for k, v in data.items() if "::" in k or k not in declared}


def _covers(target: str, plot_id: str) -> bool:
    """Whether DVC's ``plot_id`` is ``target`` or lies in it (``target`` a directory)."""
    target, plot = PurePosixPath(target).as_posix(), PurePosixPath(_id_for_name(plot_id)).as_posix()
    return plot == target or plot.startswith(f"{target}/")


def _unique(path: Path, used: set[Path]) -> Path:
    """Return ``path`` or ``stem-2.suffix`` etc. so that no two pictures share a file."""
    candidate, n = path, 1
    while candidate in used:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    used.add(candidate)
    return candidate


def dvc_plots_json(
    revs: Sequence[str] | None, repo_root: Path, image_dir: Path, targets: Sequence[str] | None
) -> dict[str, Any]:
    """Ask DVC for plots as JSON.

    ``dvc plots show --json`` (workspace only) without revisions, otherwise
    ``dvc plots diff --json REV...`` (one revision is compared with the workspace).

    Args:
        revs: revisions, or ``None``/empty for the workspace.
        repo_root: the DVC repository root.
        image_dir: where DVC copies image plots (``-o``).
        targets: plot files or ids to restrict to.

    Returns:
        DVC's JSON: ``{"data": {plot_id: [entry, ...]}, "errors": [...]}``.

    Raises:
        PlotsError: DVC failed or printed something that is not JSON.
    """
    args = ["plots"]
    if revs:
        args += ["diff", "--json", "-o", str(image_dir)]
        if targets:
            args += ["--targets", *targets]
        args += ["--", *revs]
    else:
        args += ["show", "--json", "-o", str(image_dir), *(["--", *targets] if targets else [])]
    try:
        proc = run_dvc(args, repo_root)
        return json.loads(proc.stdout)
    except RepoError as err:
        raise PlotsError(str(err)) from err
    except json.JSONDecodeError as err:
        raise PlotsError(f"`dvc {' '.join(args)}` did not print JSON: {err}") from err


def _check_out_dir(out_dir: Path) -> None:
    """Fail before any work, naming the path, where ``out_dir`` cannot be made or written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PlotsError(f"{out_dir}: is a file; give a directory for the pictures")
    parent = next((p for p in out_dir.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise PlotsError(f"{out_dir}: cannot create it, {parent} is a file")
    if (out_dir / "index.md").is_dir():
        raise PlotsError(f"{out_dir / 'index.md'}: is a directory; cannot write the index")


def _check_targets(
    targets: Sequence[str],
    data: Mapping[str, Any],
    revs: Sequence[str] | None,
    repo_root: Path,
    probe_dir: Path,
) -> None:
    """Fail, naming them and the known plots, on targets for which DVC found no plot.

    A target is known when a plot id is (under) it; otherwise (a ``dvc.yaml``, a file that a
    named plot reads) DVC is asked about it alone.
    """
    unknown = [t for t in targets if not any(_covers(t, plot_id) for plot_id in data)]
    unknown = [
        t for t in unknown if not dvc_plots_json(revs, repo_root, probe_dir, [t]).get("data")
    ]
    if unknown:
        known = dvc_plots_json(revs, repo_root, probe_dir, None).get("data") or {}
        raise PlotsError(
            f"no plot {', '.join(map(repr, unknown))}; the plots are: "
            f"{', '.join(repr(_id_for_name(k)) for k in known) or 'none'}"
        )


def _plot_not_rev(rev: str, repo_root: Path) -> str:
    """A hint when a word given as a revision names a plot (``--rev`` takes every word after it)."""
    with tempfile.TemporaryDirectory(prefix="geolab-plots-") as tmp:
        try:
            plots = dvc_plots_json(None, repo_root, Path(tmp), None).get("data") or {}
        except PlotsError:
            return ""
    if not any(_covers(rev, plot_id) for plot_id in plots):
        return ""
    return (
        f"; '{rev}' is a plot: --rev takes every word after it, so give plots before --rev or "
        f"after -- (geolab plots --rev REV... -- '{rev}')"
    )


def _log_dvc_errors(errors: Iterable[Mapping[str, Any]]) -> None:
    for err in errors:
        log.warning(
            "dvc could not load plot %s at %s: %s",
            err.get("name") or err.get("source"),
            err.get("rev"),
            err.get("msg") or err.get("type"),
        )


def render_vega(spec: Mapping[str, Any], path: Path, scale: float = 2) -> Path:
    """Render a Vega-Lite spec to PNG offline, atomically.

    Args:
        spec: the Vega-Lite specification (data inlined, as DVC gives it).
        path: the PNG to write.
        scale: pixel scale factor.

    Returns:
        ``path``.

    Raises:
        PlotsError: ``vl_convert`` rejected the spec (or it needs external data).
    """
    import vl_convert

    try:
        png = vl_convert.vegalite_to_png(dict(spec), scale=scale, allowed_base_urls=[])
    except ValueError as err:
        raise PlotsError(f"{path.name}: cannot render Vega-Lite spec: {err}") from err
    with atomic_open(path, "wb") as fh:
        fh.write(png)
    return path


def copy_file(src: Path, dst: Path) -> Path:
    """Copy a file atomically.

    Args:
        src: the source.
        dst: the destination (its directory is created).

    Returns:
        ``dst``.
    """
    with src.open("rb") as fin, atomic_open(dst, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    return dst


def _render_entry(
    plot_id: str, entry: Mapping[str, Any], out_dir: Path, image_dir: Path, used: set[Path]
) -> Picture | None:
    """Write one entry of DVC's plot JSON (a Vega spec or an image); ``None`` if skipped."""
    kind = entry.get("type")
    revisions = [str(r) for r in entry.get("revisions", [])]
    base = safe_name(_id_for_name(plot_id))
    if kind == "vega":
        spec = entry.get("content") or {}
        if not (spec.get("data") or {}).get("values"):
            log.warning("plot %s has no data at %s; skipped", plot_id, ", ".join(revisions))
            return None
        path = _unique(out_dir / f"{base}.png", used)
        return Picture(plot_id, render_vega(spec, path), revisions)
    if kind == "image":
        src = Path(str(entry.get("url", "")))
        if not src.is_absolute():
            src = image_dir / src
        rev = revisions[0] if revisions else WORKSPACE
        stem, suffix = Path(base).stem, Path(base).suffix or src.suffix
        path = _unique(out_dir / f"{stem}--{safe_name(rev)}{suffix}", used)
        return Picture(plot_id, copy_file(src, path), revisions)
    log.warning("plot %s: unsupported type %r; skipped", plot_id, kind)
    return None


def write_index(pictures: Sequence[Picture], out_dir: Path, revs: Sequence[str] | None) -> Path:
    """Write ``<out_dir>/index.md`` with relative links to every picture.

    Args:
        pictures: the written pictures.
        out_dir: the output directory.
        revs: the revisions asked for (``None``/empty: the workspace).

    Returns:
        The index path.
    """
    lines = ["# Plots", "", f"Revisions: {', '.join(revs) if revs else WORKSPACE}", ""]
    current = None
    for pic in pictures:
        if pic.plot_id != current:
            lines += [f"## {pic.plot_id}", ""]
            current = pic.plot_id
        rel = pic.path.relative_to(out_dir).as_posix()
        label = ", ".join(pic.revisions) or WORKSPACE
        lines += [f"![{pic.plot_id} ({label})]({rel})", "", f"*{label}*", ""]
    if not pictures:
        lines += ["No plots found.", ""]
    path = out_dir / "index.md"
    with atomic_open(path) as fh:
        fh.write("\n".join(lines))
    return path


def render_plots(
    revs: list[str] | None, out_dir: Path, repo_root: Path, targets: list[str] | None = None
) -> list[Path]:
    """Render DVC plots to PNG files offline, plus a markdown index.

    Args:
        revs: revisions to compare (``dvc plots diff``); one revision is compared with the
            workspace; ``None`` or empty shows the workspace (``dvc plots show``).
        out_dir: output directory (created); files are ``<plot-id>.png`` for Vega plots and
            ``<image-id>--<rev>.<ext>`` for image plots.
        repo_root: the DVC repository root.
        targets: plot files or ids to restrict to (default: all plots).

    Returns:
        The written pictures, then ``index.md``.

    Raises:
        PlotsError: ``out_dir`` is a file or lies under one, an unknown revision or target, a DVC
            failure or a spec that cannot be rendered. All but the last come before anything
            is written.
    """
    repo_root, out_dir = Path(repo_root), Path(out_dir)
    if not repo_root.is_dir():
        raise PlotsError(f"{repo_root}: no such directory")
    _check_out_dir(out_dir)
    for rev in revs or []:
        if rev != WORKSPACE:
            try:
                check_revision(rev, repo_root)
            except RepoError as err:
                raise PlotsError(f"{err}{_plot_not_rev(rev, repo_root)}") from None
    used: set[Path] = set()
    pictures: list[Picture] = []
    with tempfile.TemporaryDirectory(prefix="geolab-plots-") as tmp:
        data = dvc_plots_json(revs, repo_root, Path(tmp), targets)
        if targets:
            _check_targets(targets, data.get("data") or {}, revs, repo_root, Path(tmp) / "probe")
        out_dir.mkdir(parents=True, exist_ok=True)
        _log_dvc_errors(data.get("errors") or [])
        for plot_id, entries in _dedupe(data.get("data") or {}).items():
            for entry in entries:
                picture = _render_entry(plot_id, entry, out_dir, Path(tmp), used)
                if picture is not None:
                    log.info("wrote %s", picture.path)
                    pictures.append(picture)
    index = write_index(pictures, out_dir, revs)
    return [p.path for p in pictures] + [index]


def plots_main(argv: list[str] | None = None) -> int:
    """Render DVC plots offline from the command line.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        0 on success, 1 on error.
    """
    parser = argparse.ArgumentParser(
        prog="geolab plots",
        description="Render DVC plots to PNG offline, with a markdown index.",
        epilog="--rev takes every word after it; give plots before it or after --: "
        "geolab plots 'cls loss' --rev main, or geolab plots --rev main -- 'cls loss'",
    )
    parser.add_argument(
        "--rev",
        nargs="*",
        default=None,
        metavar="REV",
        help="revisions to compare; one is compared with the workspace (default: workspace); "
        "takes every word after it",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="repository root (default: current dir)"
    )
    parser.add_argument("targets", nargs="*", help="plot files or ids (default: all)")
    args = parser.parse_args(argv)
    try:
        paths = render_plots(args.rev, args.out, args.repo, args.targets or None)
    except PlotsError as err:
        print(f"plots: error: {err}", file=sys.stderr)
        return 1
    print(f"plots: wrote {len(paths) - 1} picture(s); index: {paths[-1]}")
    return 0
