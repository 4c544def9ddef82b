"""ner seed spread: the whole ner_generate -> ner_train -> ner_evaluate chain over several seeds.

Usage:
    python benchmarks/ner_seeds.py [--seeds 1 2 3] [--variant NAME KEY=VALUE ...]...
                                   [--out benchmarks/results/ner_seeds.json]

One run of the ner stages gives one Few-NERD F1, and the seed alone (which sentences the
template generator writes, the split, the initialisation, the batch order) moves it by several
points. This script runs the three stages' commands of ``dvc.yaml`` once per seed and per
configuration, in a scratch folder, with a copy of ``params.yaml`` where ``base.seed`` and the
variant's keys are changed (``params.yaml`` itself is not touched), and reports per set
(``generated``, ``fewnerd``) the entity precision, recall and F1 of every run, their mean and
standard deviation, and for each variant its F1 difference from the baseline (``params.yaml``
as it is) seed by seed with the mean difference and its range. A change is worth believing
when the differences agree in sign across seeds, not when one run moves.

Example: ``--variant n3000 ner.n_sentences=3000 --variant ep5 ner.epochs=5`` runs three
configurations on every seed.
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from geolab.common.io import read_json, write_json
from geolab.common.params import load_params

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ner_generate", "ner_train", "ner_evaluate")
#: The ner stages' outputs in dvc.yaml -> their names in a run's scratch folder.
OUTPUTS = {
    "artifacts/ner/dataset.jsonl": "dataset.jsonl",
    "artifacts/ner/stats.json": "stats.json",
    "models/ner": "model",
    "results/ner/train": "train",
    "results/ner/evaluate": "evaluate",
}


def stage_commands(dvc_yaml: Path, work: Path) -> list[list[str]]:
    """The ner stages' commands from ``dvc_yaml``, writing into ``work`` instead.

    Raises:
        SystemExit: a stage is missing or writes an output this script does not redirect.
    """
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    commands = []
    for name in STAGES:
        if name not in stages:
            raise SystemExit(f"{dvc_yaml}: no stage {name}")
        for out in stages[name].get("outs", []):
            path = out if isinstance(out, str) else next(iter(out))
            if path not in OUTPUTS:
                raise SystemExit(
                    f"{dvc_yaml}: {name} writes {path}, which ner_seeds.py would overwrite"
                )
        argv = shlex.split(stages[name]["cmd"])
        if argv[0] == "python":
            argv[0] = sys.executable
        commands.append([str(work / OUTPUTS[a]) if a in OUTPUTS else a for a in argv])
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


def run_chain(params: dict[str, Any], work: Path, log) -> dict[str, Any]:
    """The three ner stage scripts with ``params``; the evaluate metrics.json."""
    work.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    load_params(params_file)  # a bad override fails here, naming the key, before any work
    env = {**os.environ, "TQDM_DISABLE": "1"}
    for cmd in stage_commands(ROOT / "dvc.yaml", work):
        cmd += ["--params", str(params_file)]
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, check=False)
        if done.returncode:
            raise SystemExit(f"{cmd[1]} failed (exit {done.returncode}); see {log.name}")
    return read_json(work / "evaluate" / "metrics.json")


def summary(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per set: each seed's entity P/R/F1, then their mean and standard deviation."""
    out: dict[str, Any] = {}
    for name in ("generated", "fewnerd"):
        per_seed = {seed: m[name]["entity"] for seed, m in runs.items()}
        stats = {}
        for key in ("precision", "recall", "f1"):
            values = [v[key] for v in per_seed.values()]
            stats[key] = {
                "mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
        out[name] = {"per_seed": per_seed, **stats}
    return out


def differences(base: dict[int, dict], other: dict[int, dict]) -> dict[str, Any]:
    """Few-NERD and generated F1 of ``other`` minus ``base``, seed by seed."""
    out = {}
    for name in ("generated", "fewnerd"):
        diffs = {s: other[s][name]["entity"]["f1"] - base[s][name]["entity"]["f1"] for s in base}
        values = list(diffs.values())
        out[name] = {
            "per_seed": diffs,
            "mean": statistics.fmean(values),
            "min": min(values),
            "max": max(values),
            "same_sign": all(v > 0 for v in values) or all(v < 0 for v in values),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
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
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ner_seeds.json")
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        p.error("--seeds: each seed once")
    configs: dict[str, list[str]] = {} if args.no_baseline else {"baseline": []}
    for name, *sets in args.variant:
        if name in configs or "=" in name:
            p.error(f"--variant: {name!r} must be a new name followed by KEY=VALUE items")
        configs[name] = sets
    if not configs:
        p.error("nothing to run: --no-baseline needs at least one --variant")
    params = yaml.safe_load(Path(args.params).read_text())
    work = args.work or Path(tempfile.mkdtemp(prefix="ner_seeds_"))
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[int, dict]] = {name: {} for name in configs}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    with open(work / "log.txt", "a") as log:
        for seed in args.seeds:  # seed-major: an interrupted run still has paired results
            for name, sets in configs.items():
                start = time.perf_counter()
                metrics = run_chain(overridden(params, sets, seed), work / name / str(seed), log)
                seconds[name].append(time.perf_counter() - start)
                runs[name][seed] = metrics
                f1 = metrics["fewnerd"]["entity"]["f1"]
                print(f"seed {seed} {name}: Few-NERD F1 {f1:.3f} ({seconds[name][-1]:.0f} s)")
    result: dict[str, Any] = {
        "seeds": args.seeds,
        "configs": {
            name: {
                "set": sets,
                "seconds_mean": statistics.fmean(seconds[name]),
                **summary(runs[name]),
            }
            for name, sets in configs.items()
        },
    }
    if "baseline" in runs:
        for name in configs:
            if name != "baseline":
                result["configs"][name]["vs_baseline"] = differences(runs["baseline"], runs[name])
    write_json(args.out, result)
    for name, c in result["configs"].items():
        f = c["fewnerd"]
        line = f"{name}: Few-NERD F1 {f['f1']['mean']:.3f} ± {f['f1']['sd']:.3f}"
        line += f" (P {f['precision']['mean']:.3f}, R {f['recall']['mean']:.3f})"
        if "vs_baseline" in c:
            d = c["vs_baseline"]["fewnerd"]
            line += f", vs baseline {d['mean']:+.3f} [{d['min']:+.3f}, {d['max']:+.3f}]"
        print(line)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
