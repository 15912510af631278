"""rpbuild.notify: one callback type for whatever domain code reports as it goes. Checked
across the package from the source, so a new module cannot bring back a second name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from rpbuild.notify import Notify, quiet

PACKAGE = Path(__file__).resolve().parents[2] / "rpbuild"
RAW_CALLBACK = re.compile(r"Callable\[\[str\], *(None|object)\]")
RETIRED_NAMES = {"say", "show_logs", "Say", "on_message"}


def _parameters() -> list[tuple[str, str, str]]:
    """(where, parameter name, annotation) for every function parameter in rpbuild/."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                    annotation = ast.unparse(arg.annotation) if arg.annotation else ""
                    where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
                    found.append((where, arg.arg, annotation))
    return found


def test_progress_callbacks_are_typed_notify_and_named_alike() -> None:
    raw = [f"{w}({name}: {ann})" for w, name, ann in _parameters() if RAW_CALLBACK.search(ann)]
    assert not raw, "use rpbuild.notify.Notify:\n" + "\n".join(raw)
    retired = [f"{w}({name})" for w, name, _ in _parameters() if name in RETIRED_NAMES]
    assert not retired, "progress goes to `notify`:\n" + "\n".join(retired)
    notify = [f"{w}: {ann}" for w, name, ann in _parameters() if name == "notify"]
    assert notify and all(ann.endswith(("Notify", "Notify | None")) for ann in notify), notify


def test_quiet_is_a_notify_that_says_nothing() -> None:
    sink: Notify = quiet
    assert sink("anything") is None
