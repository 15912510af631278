"""rpbuild.progress on recorded nix 2.8 internal-json logs (tests/data/nix)."""

from __future__ import annotations

import json
from pathlib import Path

from rpbuild import progress as pg
from rpbuild.units import store_name

DATA = Path(__file__).resolve().parent.parent / "data" / "nix"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def nix_line(**obj: object) -> str:
    return "@nix " + json.dumps(obj)


def test_successful_build_log() -> None:
    p = pg.BuildProgress()
    events = p.feed_all(lines("internal-json-build-ok.log"))
    steps = [(e.kind, e.text) for e in events if e.kind.startswith("build")]
    assert steps == [
        ("build-start", "building rpbuild-hello"),
        ("build-done", "built rpbuild-hello (1/2)"),
        ("build-start", "building rpbuild-app"),
        ("build-done", "built rpbuild-app (2/2)"),
    ]
    assert (p.builds_done, p.builds_expected, p.builds_failed) == (2, 2, 0)
    assert p.running == {} and p.builds_running == 0
    assert list(p.log_tail) == [
        "rpbuild-hello> line one",
        "rpbuild-hello> line two",  # the builder wrote this one to stderr
        "rpbuild-hello> line three",
        "rpbuild-app> linking",
    ]
    hello = next(d for d in p.build_logs if d.endswith("-rpbuild-hello.drv"))
    assert p.build_log(hello) == ["line one", "line two", "line three"]
    assert p.errors == []


def test_state_while_building() -> None:
    p = pg.BuildProgress()
    for line in lines("internal-json-build-ok.log"):
        event = p.feed(line)
        if event is not None and event.kind == "build-start":
            break
    [build] = p.running.values()
    assert build.name == "rpbuild-hello"
    assert build.drv_path.startswith("/nix/store/") and build.drv_path.endswith(".drv")
    assert p.builds_expected == 2 and p.builds_done == 0


def test_failed_build_log() -> None:
    p = pg.BuildProgress()
    events = p.feed_all(lines("internal-json-build-fail.log"))
    kinds = [e.kind for e in events if e.kind.startswith("build")]
    assert kinds == ["build-start", "build-failed"]
    assert p.builds_failed == 1 and p.builds_done == 0
    drv = next(iter(p.build_logs))
    log = p.build_log(drv)
    assert len(log) == pg.TAIL_LINES  # 32 lines written, the last 25 kept
    assert log[0] == "log line 7" and log[-2:] == ["log line 30", "boom"]
    [error] = p.errors
    assert error == f"error: builder for '{drv}' failed with exit code 3"  # ANSI stripped
    assert p.log_tail[-1] == error and p.log_tail[-2] == "rpbuild-fail> boom"


def test_plain_lines_and_broken_json_go_to_the_tail() -> None:
    p = pg.BuildProgress()
    p.feed("warning: Git tree '/x' is dirty")
    p.feed("@nix {not json")
    p.feed("\x1b[31;1merror:\x1b[0m something broke")
    assert list(p.log_tail) == [
        "warning: Git tree '/x' is dirty",
        "@nix {not json",
        "error: something broke",
    ]
    assert p.errors == ["error: something broke"]
    assert p.messages == list(p.log_tail)


def test_log_tail_is_bounded() -> None:
    p = pg.BuildProgress()
    for i in range(100):
        p.feed(f"line {i}")
    assert len(p.log_tail) == pg.TAIL_LINES and p.log_tail[0] == "line 75"


def test_downloads_and_substitutions() -> None:
    p = pg.BuildProgress()
    feed = [
        nix_line(action="start", id=1, level=0, type=102, text=""),
        nix_line(action="start", id=2, level=0, type=103, text=""),
        nix_line(action="result", id=1, type=106, fields=[101, 5000]),
        nix_line(action="start", id=3, level=4, type=108, text="copying",
                 fields=["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc-2.38",
                         "https://cache.nixos.org"]),
        nix_line(action="start", id=4, level=4, type=101, text="downloading", fields=["https://x"]),
        nix_line(action="result", id=4, type=105, fields=[1500, 4000, 0, 0]),
        nix_line(action="result", id=2, type=105, fields=[0, 3, 1, 0]),
    ]  # fmt: skip
    events = p.feed_all(feed)
    assert [e.text for e in events] == ["fetching glibc-2.38 from https://cache.nixos.org"]
    assert p.substituting == {3: "glibc-2.38"}
    assert (p.download_done, p.download_expected) == (1500, 5000)
    assert (p.paths_done, p.paths_expected) == (0, 3)
    p.feed(nix_line(action="result", id=4, type=105, fields=[4000, 4000, 0, 0]))
    p.feed(nix_line(action="stop", id=4))
    p.feed(nix_line(action="stop", id=3))
    assert p.download_done == 4000 and p.substituting == {}


def test_phase_and_remote_machine() -> None:
    p = pg.BuildProgress()
    event = p.feed(
        nix_line(action="start", id=7, level=3, type=105, text="building",
                 fields=["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-img.drv", "ssh://b", 1, 1])
    )  # fmt: skip
    assert event == pg.Event("build-start", "building img on ssh://b")
    p.feed(nix_line(action="result", id=7, type=104, fields=["installPhase"]))
    assert p.running[7].phase == "installPhase"


def test_store_name_and_strip_ansi() -> None:
    assert store_name("/nix/store/5l45q0jagsfq3i7hzwj2cigw0jxl9rzb-rosenpass-0.2.1.drv") == (
        "rosenpass-0.2.1"
    )
    assert store_name("/nix/store/5l45q0jagsfq3i7hzwj2cigw0jxl9rzb-bash-5.2") == "bash-5.2"
    assert store_name("not a store path") == "not a store path"
    assert pg.strip_ansi("\x1b[35;1mx\x1b[0m") == "x"


def test_an_interrupted_build_is_not_reported_built() -> None:
    """Ctrl-C stops nix's build activity without counting it done or failed."""
    p = pg.BuildProgress()
    drv = "/nix/store/" + "a" * 32 + "-slow-1.drv"
    start = {"action": "start", "id": 7, "type": 105, "fields": [drv, "", 1, 1], "text": "b"}
    for obj in (
        {"action": "start", "id": 6, "type": 104, "text": ""},
        {"action": "result", "id": 6, "type": 105, "fields": [0, 1, 1, 0]},
        start,
    ):
        p.feed("@nix " + json.dumps(obj))
    event = p.feed("@nix " + json.dumps({"action": "stop", "id": 7}))
    assert event is None and p.builds_done == 0


def test_counters_add_up_across_nix_calls() -> None:
    """One view follows every `nix build` of a run; each call has its own activity ids."""

    def shifted(line: str, offset: int) -> str:
        obj = json.loads(line.removeprefix("@nix "))
        if "id" in obj:  # msg lines have none
            obj["id"] += offset
        return nix_line(**obj)

    p = pg.BuildProgress()
    first = lines("internal-json-build-ok.log")
    p.feed_all(first)
    p.feed_all(shifted(line, 1 << 40) for line in lines("internal-json-build-fail.log"))
    # nix drops a failed build from `expected` once it counts it as failed
    assert (p.builds_done, p.builds_expected, p.builds_failed) == (2, 2, 1)
