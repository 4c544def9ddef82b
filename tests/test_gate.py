"""Metric gate against a real DVC repository in a temporary directory (offline)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import git, init_dvc_repo

from geolab.common.params import ParamsError, from_dict
from geolab.reporting import gate as gate_mod
from geolab.reporting import repo as repo_mod
from geolab.reporting.gate import (
    GatedMetric,
    GateParams,
    evaluate_gate,
    format_table,
    gate_main,
    judge,
    lookup,
)

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or repo_mod.dvc_command() is None, reason="needs git and dvc"
)

BASE_METRICS = {"test": {"accuracy": 0.9, "loss": 0.3}, "f1": 0.7}
DVC_YAML = "metrics:\n  - metrics/eval.json\n"


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repo whose first commit (tag ``base``) holds metrics/eval.json."""
    repo = tmp_path_factory.mktemp("gate-template")
    dvc = repo_mod.dvc_command()
    assert dvc is not None
    init_dvc_repo(repo, dvc)
    (repo / "dvc.yaml").write_text(DVC_YAML, encoding="utf-8")
    _write_json(repo / "metrics/eval.json", BASE_METRICS)
    _write_json(repo / "undeclared.json", {"score": 10})  # committed, not a DVC metric
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "tag", "base")
    return repo


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(template_repo, dst, symlinks=True)
    return dst


def _metric(key: str, direction: str = "max", **kw: object) -> GatedMetric:
    return GatedMetric(file=kw.pop("file", "metrics/eval.json"), key=key, direction=direction, **kw)


def _by_name(rows: list[gate_mod.GateRow]) -> dict[str, gate_mod.GateRow]:
    return {r.name: r for r in rows}


def test_floor_regression_improvement(repo: Path) -> None:
    _write_json(repo / "metrics/eval.json", {"test": {"accuracy": 0.8, "loss": 0.2}, "f1": 0.6})
    params = GateParams(
        rev="base",
        metrics=[
            _metric("test/accuracy", tolerance=0.05, name="acc"),  # slash key, regressed
            _metric("test.loss", "min", tolerance=0.0, floor=0.25, name="loss"),  # dotted, better
            _metric("f1", floor=0.65, name="f1"),  # below floor
        ],
    )
    rows = _by_name(evaluate_gate(params, None, repo))
    assert rows["acc"].failed
    assert rows["acc"].status.startswith("FAIL: regressed by 0.1 (> tolerance 0.05)")
    assert rows["acc"].base == pytest.approx(0.9)
    assert rows["acc"].delta == pytest.approx(-0.1)
    assert rows["loss"].status == "ok" and rows["loss"].base == pytest.approx(0.3)
    assert rows["f1"].status.startswith("FAIL: below floor")
    table = format_table(list(rows.values()))
    acc_line = next(line for line in table.splitlines() if line.startswith("acc "))
    assert "regressed" in acc_line
    assert table.splitlines()[-1] == "gate: 1 ok, 2 FAILED"


def test_gate_main_exit_codes_and_json(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    gate = {
        "rev": "base",
        "metrics": [
            {
                "file": "metrics/eval.json",
                "key": "test/accuracy",
                "direction": "max",
                "tolerance": 0.01,
                "floor": 0.5,
            },
        ],
    }
    Path("params.yaml").write_text(yaml.safe_dump({"gate": gate}), encoding="utf-8")
    _write_json(repo / "metrics/eval.json", {"test": {"accuracy": 0.95}})  # improvement
    assert gate_main(["--json", "out/gate.json"]) == 0
    report = json.loads(Path("out/gate.json").read_text())
    assert report["passed"] is True and report["rows"][0]["base"] == pytest.approx(0.9)
    _write_json(repo / "metrics/eval.json", {"test": {"accuracy": 0.85}})  # regression
    assert gate_main(["--rev", "HEAD", "--json", "out/gate.json"]) == 1
    assert json.loads(Path("out/gate.json").read_text())["passed"] is False


def test_missing_file_and_key_fail_no_base_passes(repo: Path) -> None:
    _write_json(repo / "metrics/new.json", {"test": {"iou": 0.5}})  # not at base
    params = GateParams(
        rev="base",
        metrics=[
            _metric("test/accuracy", file="metrics/gone.json", name="gone"),
            _metric("test/recall", name="nokey"),
            _metric("test/iou", file="metrics/new.json", tolerance=0.0, name="new"),
            _metric("score", file="undeclared.json", tolerance=0.0, name="git"),
        ],
    )
    rows = _by_name(evaluate_gate(params, None, repo))
    assert rows["gone"].failed and "metrics/gone.json" in rows["gone"].status
    assert rows["nokey"].failed
    assert "test/recall" in rows["nokey"].status and "metrics/eval.json" in rows["nokey"].status
    assert rows["new"].status == "ok (no base)" and rows["new"].base is None
    # not declared as a DVC metric: the base value comes from `git show`
    assert rows["git"].status == "ok" and rows["git"].base == 10


def test_nan_fails_and_git_fallback_without_dvc(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repo_mod, "dvc_command", lambda: None)
    (repo / "metrics/eval.json").write_text(
        '{"test": {"accuracy": NaN, "loss": 0.5}}', encoding="utf-8"
    )
    params = GateParams(
        rev="base", metrics=[_metric("test/accuracy"), _metric("test/loss", "min", tolerance=0.1)]
    )
    acc, loss = evaluate_gate(params, None, repo)
    assert acc.failed and "NaN" in acc.status
    assert loss.base == pytest.approx(0.3) and loss.status.startswith("FAIL: regressed by 0.2")


def test_unknown_revision(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = GateParams(metrics=[_metric("test/accuracy")])
    with pytest.raises(repo_mod.RepoError, match="unknown revision 'nosuch'"):
        evaluate_gate(params, "nosuch", repo)
    monkeypatch.chdir(repo)
    Path("params.yaml").write_text(
        yaml.safe_dump({"gate": {"metrics": [{"file": "x.json", "key": "a", "direction": "max"}]}})
    )
    assert gate_main(["--rev", "nosuch"]) == 2


def test_lookup_keys() -> None:
    data = {"test": {"accuracy": 0.9}, "f1.macro": 0.5, "lst": [1, 2]}
    assert lookup(data, "test/accuracy") == (True, 0.9)
    assert lookup(data, "test.accuracy") == (True, 0.9)
    assert lookup(data, "f1.macro") == (True, 0.5)
    assert lookup(data, "test/missing") == (False, None)
    assert lookup(data, "lst") == (True, [1, 2])  # found, then reported as not a number
    assert lookup(data, "test") == (True, {"accuracy": 0.9})


def test_judge_boundaries() -> None:
    m = _metric("k", tolerance=0.1)
    assert judge(m, 0.8, 0.9) == "ok"  # 0.9 - 0.8 == 0.09999999999999998
    assert judge(_metric("k", "min", tolerance=0.1), 0.4, 0.3) == "ok"  # 0.10000000000000003
    assert judge(m, 0.79, 0.9).startswith("FAIL: regressed")
    assert judge(m, 0.5, None) == "ok (no base)"
    assert judge(_metric("k", "min", floor=1.0), 2.0, None).startswith("FAIL: above ceiling")
    assert judge(m, math.nan, 0.9).startswith("FAIL")
    assert judge(m, math.inf, 0.9) == "FAIL: value is inf (not a finite number)"
    assert (
        judge(_metric("k", "min"), -math.inf, None) == "FAIL: value is -inf (not a finite number)"
    )


def test_params_schema() -> None:
    data = {
        "rev": "main",
        "metrics": [{"file": "m.json", "key": "a/b", "direction": "min", "floor": 1}],
    }
    params = from_dict(GateParams, data, "params.yaml: gate")
    assert params.metrics[0].floor == 1.0 and params.metrics[0].label == "m.json:a/b"
    with pytest.raises(ParamsError, match=r"gate\.metrics\[0\]\.direction"):
        from_dict(GateParams, {"metrics": [{"file": "m", "key": "a", "direction": "up"}]}, "gate")
    with pytest.raises(ParamsError, match="tolerance"):
        bad = {"file": "m", "key": "a", "direction": "max", "tolerance": -1}
        from_dict(GateParams, {"metrics": [bad]}, "gate")


def test_bad_workspace_values_fail_with_a_reason(repo: Path) -> None:
    (repo / "metrics/eval.json").write_text(
        '{"test": {"accuracy": Infinity, "loss": -Infinity}, "f1": 0.7}', encoding="utf-8"
    )
    (repo / "metrics/dir.json").mkdir()
    params = GateParams(
        rev="base",
        metrics=[
            _metric("test/accuracy", name="inf"),
            _metric("test/loss", "min", name="-inf"),
            _metric("test", name="mapping"),
            _metric("a", file="metrics/dir.json", name="dir"),
        ],
    )
    rows = _by_name(evaluate_gate(params, None, repo))
    assert rows["inf"].status == "FAIL: value is inf (not a finite number)"
    assert rows["-inf"].status == "FAIL: value is -inf (not a finite number)"
    assert rows["mapping"].status == (
        "FAIL: not a number ('test' in metrics/eval.json is a mapping (keys accuracy, loss); "
        "give the full key)"
    )
    assert rows["dir"].status == "FAIL: unreadable (metrics/dir.json: is a directory)"
    assert format_table(list(rows.values())).splitlines()[-1] == "gate: 0 ok, 4 FAILED"


def test_unusable_base_value_is_named_in_the_status(repo: Path) -> None:
    """A base that cannot be read does not fail the gate, but the row says it was not compared."""
    (repo / "metrics/eval.json").write_text("{not json", encoding="utf-8")
    _write_json(repo / "undeclared.json", {"score": "high"})
    git(repo, "commit", "-qam", "broken")
    _write_json(repo / "metrics/eval.json", {"test": {"accuracy": 0.5}})
    _write_json(repo / "undeclared.json", {"score": 1})
    params = GateParams(
        rev="HEAD",
        metrics=[
            _metric("test/accuracy", tolerance=0.01, name="acc"),
            _metric("score", file="undeclared.json", tolerance=0.01, name="score"),
        ],
    )
    rows = _by_name(evaluate_gate(params, None, repo))
    assert not rows["acc"].failed and rows["acc"].base is None
    assert rows["acc"].status.startswith("ok (base unreadable: metrics/eval.json at HEAD: ")
    assert rows["score"].status == "ok (base unreadable: 'score' at HEAD is 'high')"
    table = format_table(list(rows.values()))
    assert "base unreadable" in table and table.splitlines()[-1] == "gate: 2 ok, 0 FAILED"
    # a base that is not finite is named the same way
    (repo / "metrics/eval.json").write_text('{"test": {"accuracy": NaN}}', encoding="utf-8")
    git(repo, "commit", "-qam", "nan")
    _write_json(repo / "metrics/eval.json", {"test": {"accuracy": 0.5}})
    (row,) = evaluate_gate(
        GateParams(metrics=[_metric("test/accuracy", tolerance=0.0)]), None, repo
    )
    assert row.status == "ok (base unreadable: 'test/accuracy' at HEAD is nan)"


def test_gate_main_bad_json_path_and_repo(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(repo)
    gate = {
        "rev": "base",
        "metrics": [{"file": "metrics/eval.json", "key": "f1", "direction": "max"}],
    }
    Path("params.yaml").write_text(yaml.safe_dump({"gate": gate}), encoding="utf-8")
    Path("out").mkdir()
    assert gate_main(["--json", "out"]) == 2  # checked before any work: no table
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "gate: error: out: is a directory; give a file name\n"
    assert gate_main(["--json", "params.yaml/gate.json"]) == 2
    assert capsys.readouterr().err.endswith("params.yaml is a file\n")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert gate_main(["--repo", str(plain)]) == 2
    assert capsys.readouterr().err == f"gate: error: {plain.resolve()}: not a git repository\n"
    assert gate_main(["--repo", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"gate: error: {tmp_path / 'nope'}: no such directory\n"
