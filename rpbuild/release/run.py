"""`rpbuild release`: the preflight, then build and verify every image, push, and write
the report, in that order; nothing is pushed unless every refusal was decided and every
image verified (a snapshot pushes what is not reproducible and says so).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from rpbuild import __version__, lockfile, nix
from rpbuild import sizes as sz
from rpbuild.build import BuildOptions, now_utc
from rpbuild.notify import Notify, quiet
from rpbuild.profiles import select
from rpbuild.project import Project
from rpbuild.release import signing
from rpbuild.release.model import NotReproducible, ReleaseOptions, ReleaseResult, release_systems
from rpbuild.release.preflight import (
    check_lock_unchanged,
    check_options,
    check_pinned,
    check_registry,
    check_report_dir,
)
from rpbuild.release.push import push_release
from rpbuild.release.report import (
    RELEASE_JSON,
    REPORT_FORMAT,
    SUMMARY_MD,
    StagedReport,
    find_previous,
    load_previous,
    render_summary,
)
from rpbuild.release.reproduce import build_and_verify
from rpbuild.sizes_json import to_json


def release(
    project: Project,
    options: ReleaseOptions,
    *,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> ReleaseResult:
    """Check the pins, build and verify every image, push, and write the report."""
    from rpbuild.measure import size_report
    from rpbuild.release import provenance

    started = now_utc()
    profiles_all = project.load_profiles()
    profiles = list(dict.fromkeys(options.profiles)) or list(profiles_all)
    for name in profiles:
        select(profiles_all, name)
    systems = release_systems(options)
    check_options(project, options, profiles)
    warning = signing.lookaside_warning(options.sign, options.push)
    if warning is not None:
        notify(warning)
    check_report_dir(options.report)

    pinned = check_pinned(project, snapshot=options.snapshot)
    previous = find_previous(options.report, options.previous, snapshot=options.snapshot)
    previous_data, previous_sizes = load_previous(previous) if previous else ({}, {})
    check_registry(options, profiles)

    with contextlib.ExitStack() as stack:
        # Made now, before anything is built: a report that cannot be written refuses
        # the release here instead of after the push.
        staged = stack.enter_context(StagedReport(options.report)) if options.report else None
        sizes: dict[str, sz.SizeReport] = {}
        for system in systems:
            notify(f"measuring sizes for {system}")
            sizes[system] = size_report(
                project,
                profiles,
                BuildOptions(system=system, nix=options.nix),
                notify=notify,
                on_log=on_log,
            )
            if staged is not None:
                text = json.dumps(to_json(sizes[system]), indent=2) + "\n"
                staged.write(f"sizes-{system}.json", text)
        diffs = {
            system: sz.compare(previous_sizes[system], sizes[system])
            if system in previous_sizes
            else None
            for system in systems
        }
        # Everything the report needs that does not depend on the push, asked before it.
        report: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "version": options.version,
            "snapshot": options.snapshot,
            "released_at": None,
            "repository": options.push,
            "git": {
                "commit": pinned.commit,
                "clean": pinned.clean,
                "changes": list(pinned.changes),
            },
            "rpbuild_version": __version__,
            "nix_version": str(nix.nix_version()),
            "inputs": lockfile.pinned_inputs(pinned.lock_bytes, options.nix.overrides),
            "profiles": profiles,
            "systems": systems,
            "images": [],
            "tags": [],
            "verified": False,
            "sizes": {system: f"sizes-{system}.json" for system in systems},
            "previous": (
                {"version": previous_data.get("version"), "report": str(previous)}
                if previous
                else None
            ),
        }
        targets = [(profile, system) for profile in profiles for system in systems]
        with tempfile.TemporaryDirectory(prefix="rpbuild-release-") as tmp:
            _, images = build_and_verify(
                project,
                targets,
                options.nix,
                Path(tmp),
                keep_archives=options.push is not None,  # only a push needs the file
                notify=notify,
                on_log=on_log,
            )
            check_lock_unchanged(project, pinned.lock_bytes)
            failed = [i for i in images if not (i.verification and i.verification.reproducible)]
            if failed and not options.snapshot:
                first = failed[0].verification
                raise NotReproducible(
                    f"{failed[0].profile} ({failed[0].system}) is not reproducible: "
                    f"{first.reason if first else '?'}; nothing was pushed",
                    hint="a --snapshot release pushes it anyway and records it in the report",
                )
            boms = provenance.sboms(project, images, options.nix, notify=notify, on_log=on_log)
            pushed = push_release(images, options, notify) if options.push else []

        report["released_at"] = now_utc()
        report["images"] = [image.as_dict() for image in images]
        report["tags"] = [tag.as_dict() for tag in pushed]
        report["verified"] = not failed
        attestations = provenance.finish(
            report,
            boms,
            invocation=options.invocation,
            started=started,
            finished=report["released_at"],
            signing=options.sign.as_dict() if options.sign and pushed else None,
        )
        summary = render_summary(report, sizes, diffs)
        summary += "\n".join(provenance.summary_lines(report))
        if staged is not None:
            for name, text in attestations.items():
                staged.write(name, text)
            staged.write(RELEASE_JSON, json.dumps(report, indent=2) + "\n")
            staged.write(SUMMARY_MD, summary)
            staged.commit()
    return ReleaseResult(
        report=report, summary=summary, report_dir=options.report, verified=not failed
    )
