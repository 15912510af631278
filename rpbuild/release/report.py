"""The release report: release.json, SUMMARY.md and the size reports, compared with the
previous release's, written under a temporary name and renamed into place whole; and
the few lines the terminal shows.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rpbuild import sizes as sz
from rpbuild.errors import RpbuildError
from rpbuild.fsutil import load_json
from rpbuild.profiles import CREATED_RE, instant_problem
from rpbuild.release.model import ReleaseRefused, ReleaseResult
from rpbuild.sizes_json import load_report_file
from rpbuild.views.sizes import render_markdown

REPORT_FORMAT = "rpbuild-release/1"
RELEASE_JSON = "release.json"
SUMMARY_MD = "SUMMARY.md"


def find_previous(report: Path | None, explicit: Path | None, *, snapshot: bool) -> Path | None:
    """The report to diff sizes against: the given one, else the newest release report
    next to this one (snapshots are skipped unless this is a snapshot too)."""
    if explicit is not None:
        if not (explicit / RELEASE_JSON).is_file():
            raise RpbuildError(f"{explicit}: not a release report (no {RELEASE_JSON})")
        return explicit
    if report is None or not report.parent.is_dir():
        return None
    best: tuple[str, Path] | None = None
    for candidate in report.parent.iterdir():
        path = candidate / RELEASE_JSON
        if candidate == report or ".tmp-" in candidate.name or not path.is_file():
            continue
        try:
            data = load_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
            continue
        if data.get("snapshot") and not snapshot:
            continue
        stamp = str(data.get("released_at", ""))
        if not CREATED_RE.match(stamp) or instant_problem(stamp) is not None:
            continue  # not a date rpbuild wrote: it cannot be ordered
        if best is None or stamp > best[0]:
            best = (stamp, candidate)
    return best[1] if best else None


_MISSING = object()


def _json_kind(value: object) -> str:
    """How a wrong JSON value is named in a message: its type, not its (maybe long) text."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is _MISSING:
        return "nothing (the key is missing)"
    if value is None:
        return "null"
    return next((k for t, k in kinds.items() if isinstance(value, t)), "a number")


def load_previous(previous: Path) -> tuple[dict[str, Any], dict[str, sz.SizeReport]]:
    """The previous report's release.json and size reports, read before anything is
    built; a report of another shape is refused naming the file and the key at fault."""
    path = previous / RELEASE_JSON
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RpbuildError(f"{path}: unreadable release report: {exc}") from None

    def wrong(where: str, expected: str, value: object) -> RpbuildError:
        return RpbuildError(
            f"{path}: {where}: expected {expected}, got {_json_kind(value)}; "
            "not a release report rpbuild wrote"
        )

    if not isinstance(data, dict):
        raise wrong("(top level)", "an object", data)
    files = data.get("sizes", _MISSING)
    if not isinstance(files, dict):
        raise wrong("sizes", "an object of system: file name", files)
    for system, name in files.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise wrong(f"sizes.{system}", "a file name in the report directory", name)
    if not isinstance(data.get("version"), str):
        raise wrong("version", "a string", data.get("version", _MISSING))
    if data.get("format") != REPORT_FORMAT:
        raise RpbuildError(
            f"{path}: format: {data.get('format')!r}, not {REPORT_FORMAT!r}; "
            "not a release report this rpbuild wrote"
        )
    reports = {system: load_report_file(previous / name) for system, name in files.items()}
    return data, reports


def _md_code(text: str | None) -> str:
    return f"`{text}`" if text else "–"


def render_summary(
    report: Mapping[str, Any],
    sizes: Mapping[str, sz.SizeReport],
    diffs: Mapping[str, sz.ReportDiff | None],
) -> str:
    """SUMMARY.md: what was released from what, the digests, and the size changes."""
    title = f"# rosenpass images {report['version']}"
    if report["snapshot"]:
        title += " (snapshot)"
    git_info = report["git"]
    state = "clean tree" if git_info["clean"] else "uncommitted changes"
    verified = "**yes**" if report["verified"] else "**no**"
    lines = [
        title,
        "",
        f"Built {report['released_at']} from commit `{git_info['commit'][:12]}` ({state}) "
        f"with rpbuild {report['rpbuild_version']} and Nix {report['nix_version']}. "
        f"Every image reproducible: {verified}.",
        "",
        "## Inputs",
        "",
        "| Input | Revision | Date | narHash | Built from |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, pin in report["inputs"].items():
        origin = f"override {_md_code(pin['override'])}" if pin["override"] else pin["source"]
        lines.append(
            f"| {name} | {_md_code(pin['rev'])} | {pin['date'] or '–'} "
            f"| {_md_code(pin['nar_hash'])} | {origin} |"
        )
    lines += [
        "",
        "## Images",
        "",
        "| Profile | System | rosenpass | Pushed as | Manifest digest | Image ID | Reproducible |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for image in report["images"]:
        verification = image["verification"] or {}
        ok = "yes" if image["verified"] else f"no: {verification.get('reason') or '?'}"
        rp = image.get("rosenpass") or {}
        rosenpass = f"{rp.get('version') or '?'} from {rp.get('source') or '?'}"
        lines.append(
            f"| {image['profile']} | {image['system']} | {rosenpass} "
            f"| {_md_code(image['reference'])} "
            f"| {_md_code(image['manifest_digest'])} | {_md_code(image['image_id'])} | {ok} |"
        )
    if report["tags"]:
        lines += ["", "## Tags", "", "| Tag | Digest | Platforms |", "| --- | --- | --- |"]
        for tag in report["tags"]:
            kind = "manifest list: " if tag["kind"] == "list" else ""
            platforms = ", ".join(tag["platforms"])
            lines.append(f"| `{tag['reference']}` | `{tag['digest']}` | {kind}{platforms} |")
    lines.append("")
    previous = report.get("previous")
    if previous:
        lines += [
            f"Size changes are against release {previous['version']} "
            f"(report `{previous['report']}`).",
            "",
        ]
    else:
        lines += ["No earlier release report to compare sizes with.", ""]
    for system, size_report in sizes.items():
        text = render_markdown(size_report, diffs.get(system))
        lines.append(text.replace("## Image sizes", f"## Image sizes: {system}", 1).rstrip())
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


class StagedReport:
    """The report directory under a temporary name next to it (DIR.tmp-XXXX), renamed
    to DIR by commit(): it exists whole or not at all.

    It is created before anything is built, so that a location that cannot be written
    (a read-only or virtual file system, which os.access cannot tell for root) refuses
    the release instead of failing after the push and burning the version. Leaving the
    `with` block without commit() removes it and the parents it made.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: list[Path] = []  # parents this made, outermost first
        missing = []
        parent = directory.parent
        while not (parent.exists() or parent.is_symlink()) and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        try:
            for path in reversed(missing):
                try:
                    path.mkdir()
                except FileExistsError:
                    if not path.is_dir():
                        raise
                    continue
                self._made.append(path)
            self.tmp = Path(tempfile.mkdtemp(prefix=f"{directory.name}.tmp-", dir=directory.parent))
        except OSError as exc:
            self._remove_parents()
            failed = exc.filename if exc.filename in {str(p) for p in missing} else "it"
            raise RpbuildError(
                f"--report {directory}: cannot create {failed}: {exc.strerror}"
            ) from None
        self._committed = False

    def __enter__(self) -> StagedReport:
        return self

    def __exit__(self, *_: object) -> None:
        if not self._committed:
            self.discard()

    def write(self, name: str, text: str) -> None:
        try:
            (self.tmp / name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RpbuildError(
                f"--report {self.directory}: cannot write {name}: {exc.strerror}"
            ) from None

    def commit(self) -> None:
        """Rename the complete report into place; never over an existing one."""
        try:
            self.tmp.chmod(0o755)
            if self.directory.exists() or self.directory.is_symlink():
                raise ReleaseRefused(
                    f"{self.directory}: appeared during the release; not overwritten"
                )
            self.tmp.rename(self.directory)
        except OSError as exc:
            raise RpbuildError(
                f"--report {self.directory}: cannot write it: {exc.strerror}"
            ) from None
        self._committed = True

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._remove_parents()

    def _remove_parents(self) -> None:
        for path in reversed(self._made):
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: someone else may have put something there
        self._made = []


def write_report(directory: Path, files: Mapping[str, str]) -> None:
    """Write every file into DIR.tmp-XXXX, then rename it to DIR: all or nothing."""
    with StagedReport(directory) as staged:
        for name, text in files.items():
            staged.write(name, text)
        staged.commit()


def summary_lines(result: ReleaseResult) -> list[str]:
    """A few lines for the terminal: what was pushed (or built) and where the report is."""
    report = result.report
    lines = []
    if report["tags"]:
        lines.append(f"released {report['version']}:")
        lines += [f"  {t['reference']}  {t['digest']}" for t in report["tags"]]
    else:
        lines.append(f"built {report['version']} (not pushed: no --push):")
        lines += [f"  {i['profile']} ({i['system']})  {i['image_id']}" for i in report["images"]]
    lines.append(
        "every image reproducible"
        if result.verified
        else "NOT every image reproducible (see the report)"
    )
    signed = report.get("signing")
    if signed:
        lines.append(f"every tag signed ({signed['method']}, {signed['key']})")
    if result.report_dir is not None:
        lines.append(f"report: {result.report_dir} (with the SBOMs and the provenance)")
    return lines
