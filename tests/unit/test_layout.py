"""tests/unit mirrors rpbuild/: a module's unit tests are where its name says, so that a
reader (and a move) finds them. Packages nest the same way (rpbuild/release/tags.py ->
tests/unit/release/test_tags.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rpbuild"
UNIT = ROOT / "tests" / "unit"


def _modules() -> list[Path]:
    return sorted(
        p.relative_to(PACKAGE)
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and "_data" not in p.parts
    )


def test_every_module_has_its_unit_file() -> None:
    missing = [
        f"rpbuild/{m} -> tests/unit/{m.parent / ('test_' + m.name)}"
        for m in _modules()
        if not (UNIT / m.parent / f"test_{m.name}").is_file()
    ]
    assert not missing, "no unit file:\n" + "\n".join(missing)


def test_every_test_package_is_a_package() -> None:
    """Two test_report.py files in different folders need __init__.py to coexist."""
    folders = {p.parent for p in UNIT.rglob("test_*.py")}
    assert all((folder / "__init__.py").is_file() for folder in folders)


def test_no_two_classes_share_a_name() -> None:
    """Two `BuildProgress`es (or `Check`s) make every import line a question."""
    import ast
    from collections import defaultdict

    where = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(str(path.relative_to(ROOT)))
    shared = {name: files for name, files in where.items() if len(files) > 1}
    assert not shared, shared
