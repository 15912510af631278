"""Render flake.nix from the profiles with Jinja2.

The template is Nix code written by us; every value from a profile reaches it
only inside one JSON document, escaped as a Nix string and read back with
builtins.fromJSON. Output is byte-identical for identical inputs.
"""

from __future__ import annotations

import difflib
import json
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbuild import TEMPLATE_VERSION, __version__
from rpbuild.errors import CheckFailed, RenderError
from rpbuild.fsutil import atomic_write
from rpbuild.profiles import Profile
from rpbuild.project import Project

FLAKE_TEMPLATE = "flake.nix.j2"
ENTRYPOINT_TEMPLATE = "entrypoint.sh"


def nix_indented_string(text: str) -> str:
    """Escape text for the inside of a Nix indented string (two single quotes each side).

    Only two single quotes and `${` are special there. Used for the JSON
    document, whose string values never hold a literal newline, so the
    indentation Nix strips is only whitespace between JSON tokens.
    """
    if "\x00" in text:
        raise RenderError("a NUL character cannot be passed to Nix")
    return text.replace("''", "'''").replace("${", "''${")


def spec_document(
    profiles: Mapping[str, Profile], systems: tuple[str, ...], entrypoint: str
) -> dict[str, Any]:
    return {
        "templateVersion": TEMPLATE_VERSION,
        "systems": list(systems),
        "entrypoint": entrypoint,
        "profiles": {name: profiles[name].spec() for name in sorted(profiles)},
    }


def spec_json(document: Mapping[str, Any]) -> str:
    """Canonical JSON: sorted keys, fixed indentation, UTF-8 kept as is.

    Some characters are always written as JSON escapes:
    - `'` and `$`, which only ever occur inside JSON strings: the document then
      cannot contain the two sequences that are special in a Nix indented string;
    - U+0085, U+2028 and U+2029, which Python (and so Jinja's `indent`) takes for
      line breaks: the document's lines are then exactly its JSON lines.
    """
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, indent=2)
    return text.translate(_JSON_ESCAPES)


_JSON_ESCAPES = {ord(ch): f"\\u{ord(ch):04x}" for ch in "'$\x85\u2028\u2029"}


@dataclass(frozen=True)
class Rendered:
    text: str
    spec: dict[str, Any]


def _environment(templates: Path) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        autoescape=False,  # the output is Nix; profile values reach it only as escaped JSON
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["nix_indented_string"] = nix_indented_string
    return env


def _read_template(project: Project, name: str) -> str:
    path = project.templates_dir / name
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RenderError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    except OSError as exc:
        raise RenderError(f"{path}: cannot read template: {exc.strerror or exc}") from None
    if "\x00" in text:
        raise RenderError(f"{path}: holds a NUL character, which cannot be passed to Nix")
    return text


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _render_error(exc: Exception, template: Path) -> RenderError:
    """Any exception from Jinja or from the template's own expressions, as one line.

    The line is jinja's own for syntax errors; for errors while rendering, Jinja
    rewrites the traceback so that its frames carry template file names and lines,
    and the innermost such frame is where the template failed.
    """
    import jinja2

    where = str(template)
    if isinstance(exc, jinja2.TemplateSyntaxError):
        if exc.filename:
            where = exc.filename
        if exc.lineno:
            where += f":{exc.lineno}"
    else:
        templates = template.parent.resolve()
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            path = Path(frame.filename)
            if path.is_absolute() and path.resolve().is_relative_to(templates):
                where = f"{frame.filename}:{frame.lineno}"
                break
    if isinstance(exc, jinja2.TemplateNotFound):
        what = f"template not found: {exc.name}"
    elif isinstance(exc, jinja2.TemplateError | RenderError):
        what = str(exc)
    else:
        detail = str(exc)
        what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return RenderError(f"{where}: {_one_line(what) or 'cannot render'}")


def render_flake(project: Project, profiles: Mapping[str, Profile]) -> Rendered:
    entrypoint = _read_template(project, ENTRYPOINT_TEMPLATE)
    # Read here as well as by Jinja's loader: a file that is not UTF-8 is then named.
    _read_template(project, FLAKE_TEMPLATE)
    document = spec_document(profiles, project.settings.systems, entrypoint)
    if project.builtin:
        sources = ["rpbuild's built-in profiles: " + ", ".join(sorted(profiles))]
    else:
        # relpath, not resolve(): a symlinked profiles/ may point outside the project.
        sources = [os.path.relpath(p.path, project.root) for p in profiles.values()]
        sources.append(f"templates: {FLAKE_TEMPLATE}, {ENTRYPOINT_TEMPLATE}")
    template_path = project.templates_dir / FLAKE_TEMPLATE
    try:
        template = _environment(project.templates_dir).get_template(FLAKE_TEMPLATE)
        text = template.render(
            rpbuild_version=__version__,
            template_version=TEMPLATE_VERSION,
            sources=[s.replace("\n", " ") for s in sources],
            follows=project.settings.rosenpass_follows_nixpkgs,
            spec_json=spec_json(document),
        )
    except Exception as exc:
        # Not only jinja2.TemplateError: a template can raise anything (`{{ 1/0 }}`).
        raise _render_error(exc, template_path) from None
    return Rendered(text=text, spec=document)


def _on_disk(path: Path) -> bytes | None:
    """flake.nix as it is on disk; None when there is none."""
    if path.is_dir():
        raise RenderError(f"{path}: a directory where rpbuild writes the rendered flake")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RenderError(f"{path}: cannot read: {exc.strerror or exc}") from None


def write_flake(project: Project, rendered: Rendered) -> bool:
    """Write flake.nix atomically; False when it was already up to date."""
    path = project.flake_path
    if _on_disk(path) == rendered.text.encode():
        return False
    atomic_write(path, rendered.text)
    return True


def _flake_to_compare(path: Path) -> bytes:
    """flake.nix's bytes for `render --check`; what is not a file is said in one line.

    A missing flake.nix would otherwise be a diff as long as the whole flake, and
    anything but a regular file cannot be compared at all (a FIFO would block the read).
    """
    missing = CheckFailed(f"{path}: missing; run `rpbuild render`")
    if not path.exists():
        if path.is_symlink():
            raise RenderError(f"{path}: a symlink to a file that does not exist")
        raise missing
    fix = "remove it, then run `rpbuild render`"
    if path.is_dir():
        raise RenderError(f"{path}: a directory, not a file; {fix}")
    if not path.is_file():
        raise RenderError(f"{path}: not a regular file; {fix}")
    current = _on_disk(path)
    if current is None:  # removed since it was looked at
        raise missing
    return current


def diff_flake(project: Project, rendered: Rendered) -> str:
    """A unified diff from flake.nix on disk to what it should be; empty when equal.

    Compared as bytes, so that a flake.nix that is not UTF-8 simply differs: it is
    shown with replacement characters, never a decoding error. A flake.nix that is
    missing fails the check in one line (CheckFailed); one that is not a file is an error.
    """
    path = project.flake_path
    current = _flake_to_compare(path)
    wanted = rendered.text.encode()
    if current == wanted:
        return ""
    text = current.decode("utf-8", errors="replace")
    note = ", not UTF-8" if text.encode() != current else ""
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            rendered.text.splitlines(keepends=True),
            fromfile=f"{path.name} (on disk{note})",
            tofile=f"{path.name} (rendered)",
        )
    )
    # Bytes that differ only where they are not UTF-8 can decode to the rendered text.
    return diff or f"{path.name} (on disk{note}) differs from {path.name} (rendered)\n"
