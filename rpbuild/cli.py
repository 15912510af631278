"""The command line: parse arguments, call the domain modules, print results.

Each command declares its own options only; the shared ones (-q, -v, --json, nix's,
the topology's) come from `rpbuild.options`. Domain errors become one line on stderr
and an exit code in `main`, at the boundary, and nowhere else. Heavy modules are
imported inside the commands so that `rpbuild --help` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from rpbuild import __version__, fast_start
from rpbuild.errors import ExitCode, RpbuildError, one_line
from rpbuild.options import (
    NIX,
    RUN,
    TOPOLOGY,
    Context,
    EngineOpt,
    NixArgs,
    NixOptionOpt,
    QuietOpt,
    RunArgs,
    SystemOpt,
    Systems,
    TagOpt,
    TlsVerifyOpt,
    TopologyArgs,
    VerboseOpt,
    command,
    complete_profiles,
    join_pairs,
    path_option,
    print_json,
    profile_option,
    set_verbose,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rpbuild.memo import ImageResult
    from rpbuild.profiles import Profile
    from rpbuild.topology.checks import Check
    from rpbuild.topology.lifecycle import Options

app = typer.Typer(
    name="rpbuild",
    help="Build minimal, reproducible rosenpass container images with Nix.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
profiles_app = typer.Typer(help="List the image profiles.", invoke_without_command=True)
lock_app = typer.Typer(help="Manage flake.lock.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(lock_app, name="lock")

__all__ = ["app", "join_pairs", "main"]


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"rpbuild {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    project: Annotated[
        Path | None,
        typer.Option("--project", help="Project directory (default: found from here upwards)."),
    ] = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            expose_value=True,
            callback=_show_version,
            help="Print rpbuild's name and version, and exit.",
        ),
    ] = False,
) -> None:
    ctx.obj = Context(project_dir=project, verbose=verbose, quiet=quiet)
    if verbose:
        set_verbose()


# --- profiles, init, render ---------------------------------------------------------


@profiles_app.callback()
@command()
def profiles_list(c: Context) -> None:
    """The resolved profiles and their packages, as a table."""
    if c.subcommand is not None:
        return
    _, profiles = c.load()
    if c.as_json:
        print_json("profiles", {"profiles": {n: p.as_dict() for n, p in profiles.items()}})
        return
    from rpbuild.views.profiles import profiles_table

    profiles_table(c.console(), list(profiles.values()))


@profiles_app.command("show")
@command()
def profiles_show(
    c: Context,
    name: Annotated[str, typer.Argument(help="Profile name.", autocompletion=complete_profiles)],
) -> None:
    """One profile with its packages and image settings."""
    from rpbuild.profiles import select

    _, profiles = c.load()
    profile = select(profiles, name)
    if c.as_json:
        print_json("profile", profile.as_dict())
        return
    from rpbuild.views.profiles import profile_detail

    profile_detail(c.console(), profile)


@app.command()
@command()
def init(
    c: Context,
    # A str: typer would turn '' into Path('.'), the current directory, without a word.
    directory: Annotated[str, typer.Argument(help="Where to create the project.")] = ".",
) -> None:
    """Create a project (profiles, templates, flake.lock) from rpbuild's built-in defaults."""
    from rpbuild.project import init_project

    created = init_project(directory)
    if c.as_json:
        print_json("init", {"project": directory, "created": [str(p) for p in created]})
        return
    for path in created:
        print(f"created {path}")
    if not c.quiet:
        print(f"next: cd {directory} && rpbuild render && rpbuild image --profile minimal")


@app.command()
@command()
def render(
    c: Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 with a diff when flake.nix is stale.")
    ] = False,
) -> None:
    """Write flake.nix from the profiles and templates."""
    from rpbuild.errors import CheckFailed
    from rpbuild.render import diff_flake, render_flake, write_flake

    project, profiles = c.load()
    rendered = render_flake(project, profiles)
    flake = str(project.flake_path)
    if check:
        diff = diff_flake(project, rendered)
        if c.as_json:
            status = "stale" if diff else "up to date"
            print_json("render", {"flake": flake, "status": status, "diff": diff or None})
        elif diff:
            sys.stdout.write(diff)
        if diff:
            raise CheckFailed(
                f"{flake}: not what the profiles and templates produce; run `rpbuild render`"
            )
        if not c.quiet and not c.as_json:
            print(f"{flake}: up to date")
        return
    status = "written" if write_flake(project, rendered) else "up to date"
    if c.as_json:
        print_json("render", {"flake": flake, "status": status, "diff": None})
    elif not c.quiet:
        print(f"{flake}: {status}")


# --- image, sizes, sbom ----------------------------------------------------------------


@app.command()
@command(NIX)
def image(
    c: Context,
    profile: Annotated[str, profile_option("Profile to build.")] = "minimal",
    system: SystemOpt = "x86_64-linux",
    engine: EngineOpt = None,
    tag: TagOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when up to date.")] = False,
    *,
    nix: NixArgs,
) -> None:
    """Build a profile's image with nix and load it into Docker or Podman."""
    from rpbuild import memo

    if not force:  # a repeat run: one `image inspect` when nothing changed
        cached = memo.cached_image(
            c.project(), profile=profile, system=system, engine=engine, tag=tag,
            overrides=nix.overrides(),
        )  # fmt: skip
        if cached is not None:
            _image_result(c, cached)
            fast_start.exit_now()
    from rpbuild.build import BuildOptions, build_image

    opts = BuildOptions(system=system, engine=engine, tag=tag, force=force, nix=nix.options())
    with c.progress() as shown:
        result = build_image(c.project(), profile, opts, notify=shown.notify, on_log=shown.on_log)
    _image_result(c, result)


def _image_result(c: Context, result: ImageResult) -> None:
    if c.as_json:
        print_json("image", result.as_dict())
    else:
        from rpbuild.views.image import image_result

        image_result(sys.stdout, result)


@app.command()
@command(NIX)
def sizes(
    c: Context,
    profile: Annotated[
        list[str] | None, profile_option("Profile(s) to measure (default: all).")
    ] = None,
    system: SystemOpt = "x86_64-linux",
    markdown: Annotated[
        bool, typer.Option("--markdown", help="A Markdown table for release notes.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a profile is over its budget.")
    ] = False,
    compare: Annotated[
        Path | None, path_option("--compare", "OLD.json", "Diff against an earlier --json report.")
    ] = None,
    no_build: Annotated[
        bool, typer.Option("--no-build", help="Fail instead of building what is missing.")
    ] = False,
    *,
    nix: NixArgs,
) -> None:
    """Closure size of each profile and what each package adds, like `nix path-info -Sh`."""
    from rpbuild import memo
    from rpbuild import sizes as sz
    from rpbuild.errors import CheckFailed
    from rpbuild.sizes_json import load_baseline, to_json

    if c.as_json and markdown:
        raise RpbuildError("--json and --markdown exclude each other")
    old = load_baseline(compare, system) if compare is not None else None
    nix_opts = nix.options()
    # A repeat run with everything built: the one `nix path-info` call.
    report = memo.cached_sizes(c.project(), profile or [], system, nix_opts)
    repeat = report is not None
    if report is None:
        from rpbuild.build import BuildOptions
        from rpbuild.measure import size_report

        opts = BuildOptions(system=system, nix=nix_opts)
        with c.progress(quiet=markdown) as shown:
            report = size_report(
                c.project(),
                profile or [],
                opts,
                no_build=no_build,
                notify=shown.notify,
                on_log=shown.on_log,
            )
    diff = sz.compare(old, report) if old is not None else None
    if c.as_json:
        print_json("sizes", to_json(report))
    elif markdown:
        from rpbuild.views.sizes import render_markdown

        sys.stdout.write(render_markdown(report, diff))
    else:
        from rpbuild.views.sizes import render_terminal

        render_terminal(report, c.console(), diff)
    if check:
        violations = sz.check_budgets(report)
        for violation in violations[1:]:
            sys.stderr.write(f"rpbuild: error: {violation.message()}\n")
        if violations:
            raise CheckFailed(violations[0].message())
    if repeat:
        fast_start.exit_now()


@app.command()
@command(NIX, json=False)
def sbom(
    c: Context,
    profile: Annotated[str, profile_option("Profile to describe.")] = "minimal",
    system: SystemOpt = "x86_64-linux",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write it there (default: stdout)."),
    ] = None,
    *,
    nix: NixArgs,
) -> None:
    """A CycloneDX 1.6 SBOM of the image: every store path in it, with hashes and licences."""
    from rpbuild import sbom as sb
    from rpbuild.build import BuildOptions
    from rpbuild.fsutil import atomic_write

    opts = BuildOptions(system=system, nix=nix.options())
    with c.progress() as shown:
        text = sb.generate(c.project(), profile, opts, notify=shown.notify, on_log=shown.on_log)
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, text)


# --- the two-peer topology ---------------------------------------------------------------


def _topology_profile(c: Context, name: str, *, userspace: bool = False) -> Profile:
    """The profile, if its image has what the healthcheck and the checks run (and,
    for --userspace-wireguard, wireguard-go)."""
    from rpbuild.profiles import select
    from rpbuild.topology.compose import missing_tools

    _, profiles = c.load()
    profile = select(profiles, name)
    missing = missing_tools([p.name for p in profile.packages], userspace=userspace)
    if missing:
        what = "the healthchecks and tunnel checks run"
        if "wireguard-go" in missing:
            what += " and --userspace-wireguard starts"
        raise RpbuildError(
            f"profile {name} has no {' and no '.join(missing)}, which {what}; "
            "use with-wireguard or debug"
        )
    return profile


def _show_logs(text: str) -> None:
    if text:
        sys.stderr.write(text)


@app.command("compose")
@command(TOPOLOGY, json=False)
def compose_file(
    c: Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    fmt: Annotated[
        Literal["json", "yaml"] | None,
        typer.Option(
            "--format",
            help="File format (default: from the -o extension, .yml/.yaml or .json; else json).",
        ),
    ] = None,
    *,
    topology: TopologyArgs,
) -> None:
    """Write the compose file of the two-peer topology (services server and client)."""
    from rpbuild.build import reference_for
    from rpbuild.topology import compose as cmp

    if output is not None:
        cmp.check_output(output)
    file_format = fmt or cmp.format_for(output)
    prof = _topology_profile(c, topology.profile, userspace=topology.userspace_wireguard)
    spec = cmp.TopologySpec(
        image=reference_for(prof, topology.tag),
        ip=topology.ip,
        userspace_wireguard=topology.userspace_wireguard,
        standin_rekey_seconds=topology.standin_rekey_seconds,
        subnet4=topology.subnet4 or cmp.DEFAULT_SUBNET4,
        subnet6=topology.subnet6,  # None: the default for --ip 6 and dual, none for --ip 4
    )
    text = cmp.dump(cmp.document(spec), file_format)
    if output is None:
        sys.stdout.write(text)
        return
    cmp.write_output(output, text)
    if not c.quiet:
        print(
            f"{output}: written (docker-compose -f {output} up, "
            f"or `rpbuild up --compose-file {output}`)"
        )


def _bring_up_image(
    c: Context,
    topology: TopologyArgs,
    run: RunArgs,
    nix: NixArgs,
    *,
    name: str | None,
    compose_file: Path | None,
    real_rosenpass: bool = False,
) -> tuple[Options, ImageResult]:
    """Check the topology options, then build (or find up to date) the peers' image.

    The options first: a typo must not cost a build that may take minutes.
    """
    from rpbuild import engine as engines
    from rpbuild.build import BuildOptions, build_image
    from rpbuild.topology import lifecycle as topo

    build = BuildOptions(system=run.system, engine=run.engine, tag=topology.tag, nix=nix.options())
    opts = topo.Options(
        ip=topology.ip,
        userspace_wireguard=topology.userspace_wireguard,
        standin_rekey_seconds=topology.standin_rekey_seconds,
        subnet4=topology.subnet4,
        subnet6=topology.subnet6,
        compose_file=compose_file,
        name=name,
        timeout=run.timeout,
        real_rosenpass=real_rosenpass,
    )
    # What the user typed first (a usage error is one whatever the machine has), then
    # what the engine must offer.
    topo.validate_options(opts)
    _topology_profile(c, topology.profile, userspace=opts.userspace_wireguard)
    topo.validate_options(opts, engines.detect(build.engine))
    with c.progress() as shown:
        built = build_image(
            c.project(), topology.profile, build, notify=shown.notify, on_log=shown.on_log
        )
    return opts, built


@app.command("up")
@command(TOPOLOGY, RUN, NIX)
def topology_up(
    c: Context,
    name: Annotated[
        str, typer.Option("--name", help="Compose project name of the topology.")
    ] = "rpbuild",
    compose: Annotated[
        Path | None,
        typer.Option("--compose-file", help="Run this file (from `rpbuild compose`) instead."),
    ] = None,
    *,
    topology: TopologyArgs,
    run: RunArgs,
    nix: NixArgs,
) -> None:
    """Build what is missing, start server and client, wait until the tunnel works."""
    from rpbuild import engine as engines
    from rpbuild.topology import lifecycle as topo

    opts, built = _bring_up_image(c, topology, run, nix, name=name, compose_file=compose)
    up = topo.up(
        c.project(),
        engines.detect(built.engine),
        built.reference,
        opts,
        notify=c.notify,
        on_container_logs=_show_logs,
    )
    if c.as_json:
        print_json("up", up.as_dict())
        return
    server, client = (up.plan.tunnel_addresses(role) for role in ("server", "client"))
    tunnel = ", ".join(f"{server[fam]} <-> {client[fam]}" for fam in sorted(server))
    print(f"topology {up.name} is up: tunnel {tunnel}")
    for role, cid in sorted(up.containers.items()):
        print(f"  {role}: container {cid[:12]}")
    print(f"stop it with: rpbuild down --name {up.name}")


@app.command("test")
@command(TOPOLOGY, RUN, NIX)
def topology_test(
    c: Context,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Compose project name (default: a fresh unique one)."),
    ] = None,
    compose: Annotated[
        Path | None,
        typer.Option("--compose-file", help="Test this file (from `rpbuild compose`) instead."),
    ] = None,
    real_rosenpass: Annotated[
        bool,
        typer.Option(
            "--real-rosenpass",
            envvar="RPBUILD_REAL_IMAGES",
            help="Refuse images built from the test stand-in rosenpass (for release checks). "
            "The pre-shared-key checks run in any case.",
        ),
    ] = False,
    *,
    topology: TopologyArgs,
    run: RunArgs,
    nix: NixArgs,
) -> None:
    """Bring the topology up, prove the tunnel both ways and the pre-shared key (and its
    renewal), and always tear it down."""
    from rpbuild import engine as engines
    from rpbuild.topology import lifecycle as topo

    opts, built = _bring_up_image(
        c, topology, run, nix, name=name, compose_file=compose, real_rosenpass=real_rosenpass
    )
    try:
        checks = topo.test(
            c.project(),
            engines.detect(built.engine),
            built.reference,
            opts,
            notify=c.notify,
            on_check=lambda check: (c.notify if c.as_json else print)(check.line()),
            on_container_logs=_show_logs,
        )
    except topo.TopologyFailed as exc:
        if c.as_json:
            print_json("test", _test_document(built.reference, exc.checks, passed=False))
        raise
    if c.as_json:
        print_json("test", _test_document(built.reference, checks, passed=True))
        return
    skipped = sum(1 for check in checks if check.skipped)
    print(f"passed: {len(checks) - skipped} checks, {skipped} skipped; nothing left running")


def _test_document(image: str, checks: Sequence[Check], *, passed: bool) -> dict[str, object]:
    return {
        "image": image,
        "passed": passed,
        "checks": [
            {"name": ch.name, "ok": ch.ok, "skipped": ch.skipped, "detail": ch.detail}
            for ch in checks
        ],
    }


@app.command("down")
@command()
def topology_down(
    c: Context,
    name: Annotated[
        str, typer.Option("--name", help="Compose project name of the topology.")
    ] = "rpbuild",
    engine: EngineOpt = None,
) -> None:
    """Stop the topology `rpbuild up` started and remove its network and key volumes."""
    from rpbuild import engine as engines
    from rpbuild.topology import lifecycle as topo

    topo.check_name(name)  # a typo is a usage error, whatever the engine
    removed = topo.down(c.project(), engines.detect(engine), name, notify=c.notify)
    if c.as_json:
        print_json("down", {"name": name, "stopped": removed})
    elif not removed and not c.quiet:
        print(f"topology {name}: nothing to stop")


# --- release, verify, lock update ----------------------------------------------------------


@app.command()
@command(NIX)
def release(
    c: Context,
    version: Annotated[
        str | None, typer.Argument(metavar="VERSION", help="Release version, e.g. 1.2.0.")
    ] = None,
    old_version: Annotated[
        str | None, typer.Option("--version", hidden=True, help="Replaced by VERSION.")
    ] = None,
    profile: Annotated[
        list[str] | None, profile_option("Profile(s) to release (default: all).")
    ] = None,
    system: Annotated[
        list[Systems] | None,
        typer.Option("--system", help="Nix system(s); several make a manifest list."),
    ] = None,
    push: Annotated[
        str | None,
        typer.Option("--push", metavar="REGISTRY/REPO", help="Push the images there."),
    ] = None,
    snapshot: Annotated[
        bool,
        typer.Option("--snapshot", help="Tags end in -SNAPSHOT; a dirty tree is allowed."),
    ] = False,
    report: Annotated[
        Path | None, path_option("--report", "DIR", "Write the release report into DIR.")
    ] = None,
    previous: Annotated[
        Path | None,
        path_option(
            "--previous",
            "DIR",
            "Earlier report to diff sizes against (default: newest next to DIR).",
        ),
    ] = None,
    tls_verify: TlsVerifyOpt = True,
    allow_override_input: Annotated[
        bool,
        typer.Option(
            "--allow-override-input",
            help="Release from overridden inputs without --snapshot (the report says so).",
        ),
    ] = False,
    sign_by: Annotated[
        str | None,
        typer.Option(
            "--sign-by", metavar="FINGERPRINT", help="Sign every pushed tag with this GPG key."
        ),
    ] = None,
    sign_by_sigstore_private_key: Annotated[
        Path | None,
        path_option(
            "--sign-by-sigstore-private-key",
            "FILE",
            "Sign every pushed tag with this sigstore key (not Debian 12's skopeo).",
        ),
    ] = None,
    sign_passphrase_file: Annotated[
        Path | None, path_option("--sign-passphrase-file", "FILE", "The signing key's passphrase.")
    ] = None,
    registries_d: Annotated[
        Path | None,
        path_option(
            "--registries-d",
            "DIR",
            "skopeo's registries.d (where signatures go; default: the system's).",
        ),
    ] = None,
    *,
    nix: NixArgs,
) -> None:
    """Build, verify and push every chosen profile from committed pins; write a report."""
    from rpbuild.release import model, run
    from rpbuild.release.report import summary_lines
    from rpbuild.release.signing import Signing

    if old_version is not None:
        raise RpbuildError(
            "release --version: the version is an argument now, not an option",
            hint=f"rpbuild release {old_version} ...",
        )
    if version is None:
        raise RpbuildError("release: missing VERSION (e.g. `rpbuild release 1.2.0`)")
    sign = None
    if sign_by or sign_by_sigstore_private_key:
        sign = Signing(
            gpg_key=sign_by,
            sigstore_key=sign_by_sigstore_private_key,
            passphrase_file=sign_passphrase_file,
            registries_d=registries_d,
        )
    elif sign_passphrase_file or registries_d:
        raise RpbuildError(
            "--sign-passphrase-file and --registries-d go with --sign-by or "
            "--sign-by-sigstore-private-key"
        )
    options = model.ReleaseOptions(
        version=version,
        profiles=tuple(profile or ()),
        systems=tuple(str(s) for s in system or ()),
        push=push,
        snapshot=snapshot,
        report=report,
        previous=previous,
        tls_verify=tls_verify,
        nix=nix.options(),
        allow_override_input=allow_override_input,
        sign=sign,
        invocation=("rpbuild", *sys.argv[1:]),
    )
    with c.progress() as shown:
        result = run.release(c.project(), options, notify=shown.notify, on_log=shown.on_log)
    if c.as_json:
        print_json("release", result.report)
    else:
        print("\n".join(summary_lines(result)))
    if not result.verified:
        sys.stderr.write("rpbuild: warning: not every image is reproducible (see the report)\n")


@app.command("verify-release")
@command()
def verify_release(
    c: Context,
    report: Annotated[Path, typer.Argument(help="A release report directory.")],
    key: Annotated[
        Path | None, path_option("--key", "FILE", "The GPG public key the tags are signed by.")
    ] = None,
    sigstore_key: Annotated[
        Path | None,
        path_option("--sigstore-key", "FILE", "The sigstore public key they are signed by."),
    ] = None,
    policy: Annotated[
        Path | None, path_option("--policy", "FILE", "Your own containers-policy.json.")
    ] = None,
    registries_d: Annotated[
        Path | None, path_option("--registries-d", "DIR", "skopeo's registries.d.")
    ] = None,
    tls_verify: TlsVerifyOpt = True,
) -> None:
    """Check a release against its registry: digests, signatures, SBOMs and provenance."""
    from rpbuild.release import verify_published as vr

    if sum(x is not None for x in (key, sigstore_key, policy)) > 1:
        raise RpbuildError("--key, --sigstore-key and --policy exclude each other")
    options = vr.VerifyOptions(
        gpg_public_key=key,
        sigstore_public_key=sigstore_key,
        policy=policy,
        registries_d=registries_d,
        tls_verify=tls_verify,
    )
    checks = vr.verify_release(report, options)
    failed = [check for check in checks if not check.ok]
    if c.as_json:
        print_json(
            "verify-release", {"ok": not failed, "checks": [check.as_dict() for check in checks]}
        )
    elif not c.quiet:
        print("\n".join(check.line() for check in checks))
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        first = failed[0]
        raise vr.VerifyFailed(f"{first.subject}: {first.what}: {first.detail}{more}")


@app.command()
@command(NIX)
def verify(
    c: Context,
    profile: Annotated[str, profile_option("Profile to verify.")] = "minimal",
    system: SystemOpt = "x86_64-linux",
    *,
    nix: NixArgs,
) -> None:
    """Rebuild a profile's image (nix build --rebuild) and compare the image digests."""
    from rpbuild.release import reproduce
    from rpbuild.release.model import NotReproducible

    with c.progress() as shown:
        result = reproduce.verify(
            c.project(), profile, system, nix.options(), notify=shown.notify, on_log=shown.on_log
        )
    if c.as_json:
        print_json("verify", result.as_dict())
    elif result.reproducible:
        print(f"{profile} ({system}): reproducible, image {result.image_id}")
    if not result.reproducible:
        raise NotReproducible(f"{profile} ({system}): not reproducible: {result.reason}")


@lock_app.command("update")
@command()
def lock_update(
    c: Context,
    inputs: Annotated[
        list[str] | None, typer.Argument(metavar="[INPUT]...", help="Inputs (default: all).")
    ] = None,
    option: NixOptionOpt = None,
) -> None:
    """Update flake.lock (some or all inputs) and show what changed."""
    from rpbuild import lockfile

    opts = NixArgs(option=option).options()
    with c.progress() as shown:
        result = lockfile.update_lock(c.project(), inputs or [], opts, notify=shown.notify)
    if c.as_json:
        changes = [
            {
                "input": ch.path,
                "old": ch.old.as_dict() if ch.old else None,
                "new": ch.new.as_dict() if ch.new else None,
            }
            for ch in result.changes
        ]
        print_json("lock-update", {"changed": bool(changes), "changes": changes})
        return
    print("\n".join(lockfile.lock_changes_lines(result)))


# --- the boundary ----------------------------------------------------------------------------


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM and SIGHUP stop rpbuild like Ctrl-C: children stopped, teardown run."""
    raise KeyboardInterrupt


def _usage_error(exc: typer.TyperException) -> str:
    """click's usage errors (vendored by typer) as one line."""
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or "rpbuild"
    return f"{exc.format_message()} (see `{where} --help`)"


def main() -> None:
    """Entry point: run the app and turn domain errors into exit codes."""
    from rpbuild.options import RAN

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    # A shell without job control starts `rpbuild ... &` with SIGINT ignored; a SIGINT
    # sent to rpbuild must still stop it with its cleanup, as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = join_pairs(sys.argv[1:])
    if "_RPBUILD_COMPLETE" not in os.environ:  # completion reads its words from the environment
        fast_start.keep_only_what_runs(app, argv)
    try:
        code = app(args=argv, prog_name="rpbuild", standalone_mode=False)
    except RpbuildError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("rpbuild: interrupted\n")
        sys.exit(ExitCode.INTERRUPTED)
    except OSError as exc:
        # A file the user named or that rpbuild needs cannot be read or written: the
        # input is at fault; without a file name (a full disk, no memory) the run is.
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"rpbuild: error: {one_line(f'{where}{exc.strerror or exc}')}\n")
        sys.exit(ExitCode.USAGE if exc.filename else ExitCode.RUNTIME)
    except typer.TyperException as exc:
        from typer._click.exceptions import NoArgsIsHelpError

        if isinstance(exc, NoArgsIsHelpError):  # bare `rpbuild`: the help
            sys.stdout.write(exc.format_message() + "\n")
            fast_start.exit_now()
        sys.stderr.write(f"rpbuild: error: {one_line(_usage_error(exc))}\n")
        sys.exit(ExitCode.USAGE)
    if code == ExitCode.INTERRUPTED:  # Ctrl-C outside a child: click made it exit 130
        sys.stderr.write("rpbuild: interrupted\n")
    if code in (0, None) and not RAN:  # only help was printed: nothing to tear down
        fast_start.exit_now()
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _report(exc: RpbuildError) -> None:
    """One line naming what is at fault; a failed build adds its log tail, -v any tail."""
    from rpbuild import process
    from rpbuild.errors import CommandError
    from rpbuild.nix import BuildFailed

    sys.stderr.write(f"rpbuild: error: {exc.message}\n")
    if isinstance(exc, CommandError) and exc.stderr_tail:
        show = isinstance(exc, BuildFailed) or process.verbose()
        if show:
            for line in exc.stderr_tail.rstrip("\n").splitlines():
                sys.stderr.write(f"  | {line}\n")
    if exc.hint:
        sys.stderr.write(f"rpbuild: hint: {exc.hint}\n")
