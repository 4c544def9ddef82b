"""Seed spread of a study: its whole stage chain over several seeds, variants paired by seed.

Usage:
    python benchmarks/seeds.py --study {ner,seg} [--seeds 1 2 3]
                               [--variant NAME KEY=VALUE ...]... [--out FILE]

One run of a study's stages gives one score, and the seed alone (ner: which sentences the
template generator writes, the split, the initialisation, the batch order; seg: the
initialisation of the decoder, the augmentation and the batch order) moves it by several
points. This script runs the study's stage commands of ``dvc.yaml`` once per seed and per
configuration, in a scratch folder, with a copy of ``params.yaml`` where ``base.seed`` and the
variant's keys are changed (``params.yaml`` itself is not touched), and reports per set of the
study (ner: ``generated``, ``fewnerd`` entity P/R/F1; seg: ``test`` whole-tile mIoU-5, mIoU-6,
pixel accuracy and per-class IoU, ``val`` the same on the whole validation tiles at
``seg.infer_scales``) every run's scores, their mean and standard deviation, and for each
variant its difference from the baseline (``params.yaml`` as it is) in the study's key metric
(ner F1, seg mIoU-5), seed by seed, with the mean difference and its range. A change is worth
believing when the differences agree in sign across seeds, not when one run moves.

Every run's params (each configuration, with each fold's tiles) are validated before the first
run: a bad ``--variant`` setting, or a ``--folds`` tile that is a test tile, stops the script at
once, naming it; so does an ``--out`` that cannot be written. The default ``--work`` folder is a
temporary one, printed at the start: pass it as ``--work`` to reuse its finished runs.

Example: ``--study ner --variant n3000 ner.n_sentences=3000 --variant ep5 ner.epochs=5`` runs
three configurations on every seed; ``--out`` defaults to
``benchmarks/results/<study>_seeds.json``.

Leave one tile out (seg): ``--folds 1 2 3 4 5 6 7`` replaces the seeds by folds. Each listed
tile in turn is the only validation tile (it selects the epoch, and its whole-tile score is the
fold's held-out score) and the other listed tiles are the training tiles, with one seed
(``--seeds``, default ``base.seed``); the test tiles stay as in ``params.yaml``. Variants are then
compared fold by fold on the held-out tiles, a selector with every non-test tile in it instead
of the two fixed validation tiles. ``--out`` defaults to ``benchmarks/results/seg_folds.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from geolab.common.io import OutputPathError, check_output_path, read_json, write_json
from geolab.common.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]


def _ner_scores(run: Path) -> dict[str, dict[str, float]]:
    metrics = read_json(run / "evaluate" / "metrics.json")
    return {name: metrics[name]["entity"] for name in ("generated", "fewnerd")}


def _seg_scores(run: Path) -> dict[str, dict[str, float]]:
    def flat(m: dict[str, Any]) -> dict[str, float]:
        out = {k: m[k] for k in ("miou_5", "miou_6", "pixel_accuracy")}
        return out | {f"iou_{c}": v for c, v in m["iou"].items()}

    sweep = read_json(run / "evaluate" / "scale_sweep.json")
    chosen = sorted(sweep["infer_scales"])
    val = next(r for r in sweep["scales"].values() if r["scales"] == chosen)
    train = read_json(run / "train" / "metrics.json")
    return {
        "test": flat(read_json(run / "evaluate" / "metrics.json")["test"]),
        "val": flat(val) | {f"miou_5_at_{k}": r["miou_5"] for k, r in sweep["scales"].items()},
        "train": {"best_epoch": train["best_epoch"], "epochs_run": train["epochs_run"]},
    }


@dataclasses.dataclass(frozen=True)
class Study:
    """A study's stage chain for this script.

    Attributes:
        stages: the dvc.yaml stages, in order.
        outputs: every output of those stages -> its name in a run's scratch folder.
        scores: a finished run's folder -> ``{set: {metric: value}}``.
        key: the metric variants are compared on, in every set that has it.
        headline: the set printed after each run.
        folds: the ``section.key`` of the training and of the validation tiles, for
            ``--folds`` (None: the study has no tiles to leave out).
        held_out: the set that holds a fold's validation tile scores.
    """

    stages: tuple[str, ...]
    outputs: dict[str, str]
    scores: Callable[[Path], dict[str, dict[str, float]]]
    key: str
    headline: str
    folds: tuple[str, str] | None = None
    held_out: str = "val"


STUDIES = {
    "ner": Study(
        stages=("ner_generate", "ner_train", "ner_evaluate"),
        outputs={
            "artifacts/ner/dataset.jsonl": "dataset.jsonl",
            "artifacts/ner/stats.json": "stats.json",
            "models/ner": "model",
            "results/ner/train": "train",
            "results/ner/evaluate": "evaluate",
        },
        scores=_ner_scores,
        key="f1",
        headline="fewnerd",
    ),
    "seg": Study(
        stages=("seg_prepare", "seg_train", "seg_evaluate"),
        outputs={
            "artifacts/seg/patches.npz": "patches.npz",
            "artifacts/seg/stats.json": "stats.json",
            "models/seg/model.pt": "model.pt",
            "results/seg/train": "train",
            "results/seg/evaluate": "evaluate",
        },
        scores=_seg_scores,
        key="miou_5",
        headline="test",
        folds=("seg.train_tiles", "seg.val_tiles"),
    ),
}


@dataclasses.dataclass(frozen=True)
class Replicate:
    """One run of every configuration: a seed, or a fold (its tile) with one seed."""

    label: int
    seed: int
    sets: tuple[str, ...] = ()
    folder: str = ""


def replicates(study: Study, seeds: list[int], folds: list[int] | None) -> list[Replicate]:
    """The seeds, or for ``folds`` each tile held out in turn (with ``seeds[0]``).

    Raises:
        SystemExit: folds for a study without tiles, fewer than two tiles, or a tile twice.
    """
    if folds is None:
        return [Replicate(seed, seed, (), str(seed)) for seed in seeds]
    if study.folds is None:
        raise SystemExit("--folds: this study has no tiles to leave out")
    if len(folds) < 2 or len(set(folds)) != len(folds):
        raise SystemExit("--folds: two or more tiles, each once")
    train_key, val_key = study.folds
    return [
        Replicate(
            tile,
            seeds[0],
            (f"{train_key}={[t for t in folds if t != tile]}", f"{val_key}=[{tile}]"),
            f"tile{tile}",
        )
        for tile in folds
    ]


def stage_commands(study: Study, dvc_yaml: Path, work: Path) -> list[list[str]]:
    """The study's stage commands from ``dvc_yaml``, writing into ``work`` instead.

    Raises:
        SystemExit: a stage is missing or writes an output this script does not redirect.
    """
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    commands = []
    for name in study.stages:
        if name not in stages:
            raise SystemExit(f"{dvc_yaml}: no stage {name}")
        for out in stages[name].get("outs", []):
            path = out if isinstance(out, str) else next(iter(out))
            if path not in study.outputs:
                raise SystemExit(
                    f"{dvc_yaml}: {name} writes {path}, which seeds.py would overwrite"
                )
        argv = shlex.split(stages[name]["cmd"])
        if argv[0] == "python":
            argv[0] = sys.executable
        commands.append([str(work / study.outputs[a]) if a in study.outputs else a for a in argv])
    return commands


def overridden(params: dict[str, Any], sets: list[str], seed: int) -> dict[str, Any]:
    """``params`` with ``base.seed`` and every ``section.key=value`` of ``sets`` replaced.

    Raises:
        SystemExit: a setting is not ``section.key=value`` or names an unknown key.
    """
    out = copy.deepcopy(params)
    out["base"]["seed"] = seed
    for item in sets:
        key, eq, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not (eq and dot and name):
            raise SystemExit(f"--variant: {item!r} is not section.key=value")
        if name not in (out.get(section) or {}):
            raise SystemExit(f"--variant: {key} is not a key of params.yaml")
        out[section][name] = yaml.safe_load(value)  # 3000 an int, [1, 2] a list, abc a str
    return out


def check_configs(
    params: dict[str, Any], configs: dict[str, list[str]], reps: list[Replicate], source: Path
) -> None:
    """Validate every run's params (each configuration on each replicate) before the first run.

    Each is written and loaded as :func:`run_chain` does, so what would stop a run after the
    earlier ones have taken their hours stops the benchmark at once.

    Raises:
        SystemExit: a run's params are invalid; the message names the variant and its settings
            (the baseline: ``source``), the fold, and the key.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        for name, sets in configs.items():
            for rep in reps:
                run_params = overridden(params, [*sets, *rep.sets], rep.seed)
                path.write_text(yaml.safe_dump(run_params, sort_keys=False))
                try:
                    load_params(path)
                except ParamsError as err:
                    what = " ".join(["--variant", name, *sets]) if sets else str(source)
                    if rep.sets:
                        what += f" in fold {rep.label} ({' '.join(rep.sets)})"
                    raise SystemExit(f"{what}: {str(err).removeprefix(f'{path}: ')}") from None


def run_chain(
    study: Study, params: dict[str, Any], work: Path, log, dvc_yaml: Path = ROOT / "dvc.yaml"
) -> tuple[dict, float]:
    """The study's stage scripts with ``params`` in ``work``: the run's scores and seconds.

    A finished run leaves ``done.json`` (its scores and seconds) next to its ``params.yaml``;
    a later call with the same params and folder reuses it instead of running again, so an
    interrupted benchmark resumes and new variants can join an earlier run's folder. The code
    is not compared: after changing it, use a new ``--work`` folder.
    """
    work.mkdir(parents=True, exist_ok=True)
    params_file, done_file = work / "params.yaml", work / "done.json"
    text = yaml.safe_dump(params, sort_keys=False)
    if done_file.exists() and params_file.exists() and params_file.read_text() == text:
        done = read_json(done_file)
        return done["scores"], done["seconds"]
    done_file.unlink(missing_ok=True)
    params_file.write_text(text)
    load_params(params_file)  # a bad override fails here, naming the key, before any work
    env = {**os.environ, "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    for cmd in stage_commands(study, dvc_yaml, work):
        cmd += ["--params", str(params_file)]
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, check=False)
        if done.returncode:
            raise SystemExit(f"{cmd[1]} failed (exit {done.returncode}); see {log.name}")
    seconds = time.perf_counter() - start
    scores = study.scores(work)
    write_json(done_file, {"scores": scores, "seconds": seconds})
    return scores, seconds


def summary(runs: dict[int, dict[str, dict[str, float]]], per: str = "per_seed") -> dict[str, Any]:
    """Per set: each run's scores (under ``per``), then every metric's mean and sd.

    A metric a run could not score (None: seg's IoU of a class absent from a held-out tile) is
    left out of its mean; with no value at all, mean and sd are None.
    """
    out: dict[str, Any] = {}
    for name in next(iter(runs.values())):
        per_seed = {seed: scores[name] for seed, scores in runs.items()}
        stats = {}
        for key in next(iter(per_seed.values())):
            values = [v[key] for v in per_seed.values() if v[key] is not None]
            stats[key] = {
                "mean": statistics.fmean(values) if values else None,
                "sd": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            }
        out[name] = {per: per_seed, **stats}
    return out


def differences(
    base: dict[int, dict], other: dict[int, dict], key: str, per: str = "per_seed"
) -> dict[str, Any]:
    """``key`` of ``other`` minus ``base``, seed by seed (or fold by fold), in every set."""
    out = {}
    for name, scores in next(iter(base.values())).items():
        if key not in scores:
            continue
        diffs = {s: other[s][name][key] - base[s][name][key] for s in base}
        values = list(diffs.values())
        out[name] = {
            per: diffs,
            "mean": statistics.fmean(values),
            "min": min(values),
            "max": max(values),
            "wins": sum(v > 0 for v in values),
            "same_sign": all(v > 0 for v in values) or all(v < 0 for v in values),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--study", choices=sorted(STUDIES), required=True)
    p.add_argument("--seeds", type=int, nargs="+", help="default: 1 2 3 (with --folds: base.seed)")
    p.add_argument(
        "--folds",
        type=int,
        nargs="+",
        metavar="TILE",
        help="seg: leave one tile out instead of seeds; each tile in turn is the validation "
        "tile and the others the training tiles",
    )
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "KEY=VALUE"),
        help="a configuration to compare with the baseline: a name and section.key=value items",
    )
    p.add_argument("--no-baseline", action="store_true", help="run only the variants")
    p.add_argument(
        "--work",
        type=Path,
        help="scratch folder (default: a temporary one); finished runs in it with the same "
        "params are reused (the code is not compared: a new folder after changing it)",
    )
    p.add_argument(
        "--out", type=Path, help="default: benchmarks/results/<study>_seeds.json (_folds.json)"
    )
    args = p.parse_args(argv)
    study = STUDIES[args.study]
    mode = "folds" if args.folds else "seeds"
    out_path = args.out or ROOT / f"benchmarks/results/{args.study}_{mode}.json"
    try:
        check_output_path(out_path)
    except OutputPathError as err:
        p.error(f"--out: {err}")
    params = yaml.safe_load(Path(args.params).read_text())
    seeds = args.seeds or ([params["base"]["seed"]] if args.folds else [1, 2, 3])
    if len(set(seeds)) != len(seeds) or (args.folds and len(seeds) != 1):
        p.error("--seeds: each seed once (one seed with --folds)")
    reps = replicates(study, seeds, args.folds)
    per = "per_fold" if args.folds else "per_seed"
    headline = study.held_out if args.folds else study.headline
    configs: dict[str, list[str]] = {} if args.no_baseline else {"baseline": []}
    for name, *sets in args.variant:
        if name in configs or "=" in name:
            p.error(f"--variant: {name!r} must be a new name followed by KEY=VALUE items")
        configs[name] = sets
    if not configs:
        p.error("nothing to run: --no-baseline needs at least one --variant")
    if args.folds:  # a test tile must not become a fold's training or validation tile
        section = study.folds[0].partition(".")[0]
        tested = set(args.folds) & set((params.get(section) or {}).get("test_tiles") or [])
        if tested:
            p.error(f"--folds: tile {min(tested)} is in {section}.test_tiles of {args.params}")
    for sets in configs.values():
        if args.folds and any(x.startswith(study.folds) for x in sets):
            p.error(f"--variant: {' '.join(sets)} sets the tiles that --folds sets")
    check_configs(params, configs, reps, args.params)  # before the first (long) run
    work = args.work or Path(tempfile.mkdtemp(prefix=f"{args.study}_seeds_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.work is None:
        print(
            f"scratch folder {work}: rerun with --work {work} to reuse its finished runs",
            flush=True,
        )
    runs: dict[str, dict[int, dict]] = {name: {} for name in configs}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    with open(work / "log.txt", "a") as log:
        for rep in reps:  # replicate-major: an interrupted run still has paired results
            for name, sets in configs.items():
                run = work / name / rep.folder
                chain_params = overridden(params, [*sets, *rep.sets], rep.seed)
                scores, took = run_chain(study, chain_params, run, log)
                seconds[name].append(took)
                runs[name][rep.label] = scores
                value = scores[headline][study.key]
                print(
                    f"{mode[:-1]} {rep.label} {name}: {headline} {study.key} {value:.3f} "
                    f"({seconds[name][-1]:.0f} s)",
                    flush=True,
                )
    result: dict[str, Any] = {"study": args.study, "seeds": seeds}
    if args.folds:
        result["folds"] = args.folds
    result |= {
        "key": study.key,
        "configs": {
            name: {
                "set": sets,
                "seconds_mean": statistics.fmean(seconds[name]),
                **summary(runs[name], per),
            }
            for name, sets in configs.items()
        },
    }
    if "baseline" in runs:
        for name in configs:
            if name != "baseline":
                result["configs"][name]["vs_baseline"] = differences(
                    runs["baseline"], runs[name], study.key, per
                )
    write_json(out_path, result)
    for name, c in result["configs"].items():
        h = c[headline][study.key]
        line = f"{name}: {headline} {study.key} {h['mean']:.3f} ± {h['sd']:.3f}"
        if "vs_baseline" in c:
            d = c["vs_baseline"][headline]
            line += f", vs baseline {d['mean']:+.3f} [{d['min']:+.3f}, {d['max']:+.3f}]"
        print(line)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
