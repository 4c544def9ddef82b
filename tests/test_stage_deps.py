"""dvc.yaml's deps cover the code each stage runs, and the reporting tools stay out of them.

A stage whose code imports a module that its ``deps`` do not list would not rerun when that
module changes (a stale result); a tool listed in ``deps`` reruns stages for nothing. The import
graph is read statically (``ast``) from each stage script.
"""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """geolab modules imported by one file (``from pkg import mod`` counts the submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "geolab":
                out.add(node.module)
                out |= {
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if _module_file(f"{node.module}.{a.name}")
                }
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "geolab"}
    return out


def _closure(script: Path) -> set[Path]:
    """Files of every geolab module the script imports, directly or not, with their packages.

    ``src/geolab/__init__.py`` (the version string) and package ``__init__.py`` files that hold
    only a docstring run nothing a result depends on, and are left out.
    """
    seen: set[str] = set()
    todo = list(_imports(script))
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(2, len(parts) + 1):
            mod = ".".join(parts[:i])
            path = _module_file(mod)
            if mod in seen or path is None:
                continue
            seen.add(mod)
            todo += _imports(path)
    files = {_module_file(m) for m in seen}
    return {f for f in files if f is not None and not _docstring_only(f)}


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body
    )


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _script(stage: dict) -> str:
    return next(w for w in stage["cmd"].split() if w.startswith("stages/"))


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


@pytest.mark.parametrize("name", sorted(_stages()))
def test_deps_cover_the_code_a_stage_imports(name: str) -> None:
    stage = _stages()[name]
    script = _script(stage)
    assert script in stage["deps"], f"{name}: its script {script} is not in deps"
    files = _closure(ROOT / script)
    assert files, f"{name}: {script} imports no geolab module"
    missing = sorted(str(f.relative_to(ROOT)) for f in files if not _covered(f, stage["deps"]))
    assert not missing, f"dvc.yaml stage {name}: deps do not list {missing}"


def test_no_stage_depends_on_the_reporting_tools() -> None:
    tools = SRC / "geolab" / "reporting" / "docs.py"
    for name, stage in _stages().items():
        assert not _covered(tools, stage["deps"]), f"dvc.yaml stage {name} lists {tools.parent}"
        imported = _closure(ROOT / _script(stage))
        assert not any("reporting" in f.parts for f in imported), f"{name} imports reporting"


def test_closure_follows_imports_through_modules(tmp_path: Path) -> None:
    """The checker itself: a stage reaching common.train through a study module is seen."""
    script = tmp_path / "s.py"
    script.write_text("from geolab.ner import train\n", encoding="utf-8")
    rel = {str(f.relative_to(ROOT)) for f in _closure(script)}
    assert "src/geolab/ner/train.py" in rel
    assert "src/geolab/ner/__init__.py" not in rel  # a docstring only
    assert "src/geolab/common/train.py" in rel
    assert not _covered(SRC / "geolab/common/train.py", ["src/geolab/ner", "stages/s.py"])
