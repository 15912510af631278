"""rpbuild.views.progress: nix's log drawn live, as plain lines, or not at all."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from rpbuild import progress as pg
from rpbuild.views import progress as vp

DATA = Path(__file__).resolve().parents[2] / "data" / "nix"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def test_plain_view_one_line_per_step_no_escapes() -> None:
    out = io.StringIO()
    with vp.PlainView(out) as view:
        for line in lines("internal-json-build-ok.log"):
            view(line)
    text = out.getvalue()
    assert text.splitlines() == [
        "building rpbuild-hello",
        "built rpbuild-hello (1/2)",
        "building rpbuild-app",
        "built rpbuild-app (2/2)",
    ]
    assert "\x1b" not in text and view.progress.builds_done == 2


def test_plain_view_verbose_shows_logs_and_failure() -> None:
    out = io.StringIO()
    with vp.PlainView(out, verbose=True) as view:
        for line in lines("internal-json-build-fail.log"):
            view(line)
    shown = out.getvalue().splitlines()
    assert shown[0] == "building rpbuild-fail"
    assert "rpbuild-fail> log line 30" in shown
    assert "failed rpbuild-fail" in shown
    assert "\x1b" not in out.getvalue()


def test_nix_warnings_are_shown_once_without_verbose() -> None:
    warning = json.dumps(
        {"action": "msg", "level": 1, "msg": "warning: unknown setting 'no-such-option'"}
    )
    out = io.StringIO()
    with vp.PlainView(out) as view:
        for line in (f"@nix {warning}", f"@nix {warning}", *lines("internal-json-build-ok.log")):
            view(line)
        view("warning: Git tree '/x' is dirty")  # a plain line before the JSON log
        view("warning: not writing modified lock file of flake 'path:/p':")  # overrides do
        for line in lines("stderr-fetch-locked.txt"):  # retries, then the error
            view(line)
    shown = out.getvalue().splitlines()
    assert shown.count("warning: unknown setting 'no-such-option'") == 1
    assert "warning: Git tree '/x' is dirty" in shown
    assert not any("modified lock file" in line or "retrying" in line for line in shown)
    assert "building rpbuild-hello" in shown

    tty_out = io.StringIO()
    with vp.LiveView(Console(file=tty_out, force_terminal=True, width=100)) as live:
        live(f"@nix {warning}")
        live(f"@nix {warning}")
    assert pg.strip_ansi(tty_out.getvalue()).count("unknown setting 'no-such-option'") == 1


def test_null_view_is_silent_but_keeps_state(capsys: pytest.CaptureFixture[str]) -> None:
    with vp.NullView() as view:
        for line in lines("internal-json-build-fail.log"):
            view(line)
    assert capsys.readouterr() == ("", "")
    assert view.progress.builds_failed == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_view_picks_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")  # whatever terminal runs the tests
    assert isinstance(vp.make_view(_Terminal(), quiet=True), vp.NullView)
    assert isinstance(vp.make_view(io.StringIO()), vp.PlainView)
    assert isinstance(vp.make_view(_Terminal()), vp.LiveView)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(vp.make_view(_Terminal()), vp.PlainView)


def test_live_view_renders_and_stops() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    view = vp.LiveView(console)
    with view:
        for line in lines("internal-json-build-ok.log"):
            view(line)
            if view.progress.running:
                snapshot = Console(file=io.StringIO(), width=100, record=True)
                snapshot.print(vp.render_progress(view.progress))
                assert "rpbuild-" in snapshot.export_text()
    assert not view._live.is_started
    assert "built rpbuild-app (2/2)" in out.getvalue()


def test_live_view_stops_on_ctrl_c() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    view = vp.LiveView(console)
    with pytest.raises(KeyboardInterrupt), view:
        view(lines("internal-json-build-ok.log")[0])
        raise KeyboardInterrupt
    assert not view._live.is_started


def test_render_progress_counts() -> None:
    p = pg.BuildProgress()
    for line in lines("internal-json-build-fail.log"):
        p.feed(line)
        if p.running:
            break
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(vp.render_progress(p))
    text = console.export_text()
    assert "rpbuild-fail" in text and "built 0/1" in text
    idle = Console(file=io.StringIO(), width=100, record=True)
    idle.print(vp.render_progress(pg.BuildProgress(download_done=2048, download_expected=4096)))
    idle_text = idle.export_text()
    assert "evaluating" in idle_text and "downloaded 2.0 KiB/4.0 KiB" in idle_text


def test_views_take_status_messages() -> None:
    out = io.StringIO()
    plain = vp.PlainView(out)
    with plain:
        plain.message("building minimal for x86_64-linux")
        plain.feed(lines("internal-json-build-ok.log")[0])
    assert out.getvalue() == "building minimal for x86_64-linux\n"

    quiet = vp.make_view(io.StringIO(), quiet=True)
    with quiet:
        for line in lines("internal-json-build-ok.log"):
            quiet.feed(line)
    assert quiet.progress.builds_done >= 1  # state kept for error reports, nothing shown

    tty_out = io.StringIO()
    live = vp.LiveView(Console(file=tty_out, force_terminal=True, width=100))
    with live:
        live.message("loading into docker")
    assert "loading into docker" in tty_out.getvalue()


def test_progress_display_shows_messages_and_nix_steps() -> None:
    out = io.StringIO()
    with vp.build_progress(out, quiet=False, verbose=False) as display:
        display.notify("building minimal for x86_64-linux")
        for line in lines("internal-json-build-ok.log"):
            display.on_log(line)
    assert out.getvalue().splitlines() == [
        "building minimal for x86_64-linux",
        "building rpbuild-hello",
        "built rpbuild-hello (1/2)",
        "building rpbuild-app",
        "built rpbuild-app (2/2)",
    ]


def test_quiet_progress_display_shows_warnings_only() -> None:
    out = io.StringIO()
    with vp.build_progress(out, quiet=True, verbose=False) as display:
        display.notify("building minimal for x86_64-linux")
        display.notify("warning: the store is almost full")
        for line in lines("internal-json-build-fail.log"):
            display.on_log(line)
    assert out.getvalue() == "rpbuild: warning: the store is almost full\n"
