"""The command line: parse arguments, call the domain modules, print results.

Domain errors become one line on stderr and an exit code here, at the
boundary, and nowhere else. Heavy modules are imported inside the commands so
that `rpbuild --help` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from rpbuild import __version__
from rpbuild.errors import ExitCode, RpbuildError, one_line

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rich.console import Console

    from rpbuild.memo import ImageResult
    from rpbuild.nix import NixOptions
    from rpbuild.profiles import Profile
    from rpbuild.project import Project
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


class Context:
    """The root options; a plain class (no dataclasses import before the command runs)."""

    def __init__(
        self, project_dir: Path | None, verbose: bool, quiet: bool, as_json: bool = False
    ) -> None:
        self.project_dir = project_dir
        self.verbose = verbose
        self.quiet = quiet
        # `profiles --json show`: the group's --json reaches the command
        self.as_json = as_json
        self._project: Project | None = None

    def project(self) -> Project:
        from rpbuild.project import find_project

        if self._project is None:
            self._project = find_project(self.project_dir)
        return self._project

    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)


#: Set once a command's body starts: a run that ends without one printed only help.
_RAN: list[str] = []


def _ctx(
    ctx: typer.Context, *, quiet: bool = False, verbose: bool = False, as_json: bool = False
) -> Context:
    """The root options, merged with -q/-v (and a group's --json) given after a command name."""
    _RAN.append(ctx.info_name or "?")
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    obj.quiet = obj.quiet or quiet
    obj.as_json = obj.as_json or as_json
    if verbose and not obj.verbose:
        from rpbuild import process

        obj.verbose = True
        process.set_verbose(True)
    return obj


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log every command run.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON document (see `format`).")
]
#: The `format` of every --json document: rpbuild-KIND/1; a new major number when a key
#: changes meaning or goes away (new keys may appear in any version).
JSON_FORMAT_VERSION = 1


def _complete_profiles(ctx: typer.Context, incomplete: str) -> list[str]:
    """Profile names for shell completion: file names only, nothing parsed or built."""
    from rpbuild.fsutil import profile_files
    from rpbuild.project import find_project

    root = ctx.find_root().params.get("project")
    try:
        project = find_project(Path(root) if root else None)
        names = [p.stem for p in profile_files(project.profiles_dir)]
    except (RpbuildError, OSError):
        return []
    return sorted(n for n in names if n.startswith(incomplete))


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
        from rpbuild import process

        process.set_verbose(True)


def _print_json(kind: str, data: Any) -> None:
    """One JSON document; `format` first, unless the document already names its own."""
    import json

    if not (isinstance(data, dict) and "format" in data):
        body = data if isinstance(data, dict) else {"items": data}
        data = {"format": f"rpbuild-{kind}/{JSON_FORMAT_VERSION}", **body}
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _load(c: Context) -> tuple[Project, dict[str, Profile]]:
    project = c.project()
    return project, project.load_profiles()


# --- profiles ---------------------------------------------------------------


@profiles_app.callback()
def profiles_list(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """The resolved profiles and their packages, as a table."""
    c = _ctx(ctx, quiet=quiet, verbose=verbose, as_json=as_json)
    if ctx.invoked_subcommand is not None:
        return
    _, profiles = _load(c)
    if c.as_json:
        _print_json("profiles", {"profiles": {n: p.as_dict() for n, p in profiles.items()}})
        return
    from rpbuild import views

    views.profiles_table(c.console(), list(profiles.values()))


@profiles_app.command("show")
def profiles_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Profile name.", autocompletion=_complete_profiles)],
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """One profile with its packages and image settings."""
    from rpbuild.profiles import select

    c = _ctx(ctx, quiet=quiet, verbose=verbose, as_json=as_json)
    _, profiles = _load(c)
    profile = select(profiles, name)
    if c.as_json:
        _print_json("profile", profile.as_dict())
        return
    from rpbuild import views

    views.profile_detail(c.console(), profile)


# --- init -------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    # A str: typer would turn '' into Path('.'), the current directory, without a word.
    directory: Annotated[str, typer.Argument(help="Where to create the project.")] = ".",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Create a project (profiles, templates, flake.lock) from rpbuild's built-in defaults."""
    from rpbuild.project import init_project

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    created = init_project(directory)
    if as_json:
        _print_json("init", {"project": directory, "created": [str(p) for p in created]})
        return
    for path in created:
        print(f"created {path}")
    if not c.quiet:
        print(f"next: cd {directory} && rpbuild render && rpbuild image --profile minimal")


# --- render -----------------------------------------------------------------


@app.command()
def render(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 with a diff when flake.nix is stale.")
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Write flake.nix from the profiles and templates."""
    from rpbuild.errors import CheckFailed
    from rpbuild.render import diff_flake, render_flake, write_flake

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    project, profiles = _load(c)
    rendered = render_flake(project, profiles)
    if check:
        diff = diff_flake(project, rendered)
        if as_json:
            status = "stale" if diff else "up to date"
            _print_json(
                "render", {"flake": str(project.flake_path), "status": status, "diff": diff or None}
            )
        elif diff:
            sys.stdout.write(diff)
        if diff:
            raise CheckFailed(
                f"{project.flake_path}: not what the profiles and templates produce; "
                "run `rpbuild render`"
            )
        if not c.quiet and not as_json:
            print(f"{project.flake_path}: up to date")
        return
    changed = write_flake(project, rendered)
    status = "written" if changed else "up to date"
    if as_json:
        _print_json("render", {"flake": str(project.flake_path), "status": status, "diff": None})
    elif not c.quiet:
        print(f"{project.flake_path}: {status}")


# --- two-peer topology ------------------------------------------------------

TopologyProfileOpt = Annotated[
    str,
    typer.Option(
        "--profile",
        "-p",
        help="Profile of both peers' image (needs wg and ping).",
        autocompletion=_complete_profiles,
    ),
]
IpFamilies = Literal["4", "6", "dual"]
IpOpt = Annotated[
    IpFamilies,
    typer.Option("--ip", help="Address families in the tunnel and between peers."),
]
UserspaceOpt = Annotated[
    bool,
    typer.Option(
        "--userspace-wireguard",
        help="Run WireGuard in userspace: the entrypoint starts wireguard-go as the device "
        "before rp (needs a profile with wireguard-go; the containers get /dev/net/tun). "
        "For hosts without the WireGuard kernel module.",
    ),
]
RekeyOpt = Annotated[
    float | None,
    typer.Option(
        "--standin-rekey-seconds",
        envvar="RPBUILD_STANDIN_REKEY_SECONDS",
        help="Images built from the test stand-in rosenpass only: its rekey interval "
        "(ROSENPASS_STANDIN_REKEY_SECONDS in the containers; `test` waits for it). "
        "The real rosenpass rekeys after 120/130 s.",
        show_default=False,
    ),
]
Subnet4Opt = Annotated[
    str | None,
    typer.Option("--subnet4", help="Private IPv4 subnet of the bridge between the peers."),
]
Subnet6Opt = Annotated[
    str | None,
    typer.Option("--subnet6", help="IPv6 subnet (in fd00::/8) of the bridge between the peers."),
]
TopologyTagOpt = Annotated[
    str | None, typer.Option("--tag", help="Image reference (default: rosenpass:PROFILE).")
]
NameOpt = Annotated[str, typer.Option("--name", help="Compose project name of the topology.")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the tunnel to come up.")
]


def _topology_profile(c: Context, name: str, *, userspace: bool = False) -> Profile:
    """The profile, if its image has what the healthcheck and the checks run (and,
    for --userspace-wireguard, wireguard-go)."""
    from rpbuild.profiles import select
    from rpbuild.topology.compose import missing_tools

    _, profiles = _load(c)
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


def _say(c: Context) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not c.quiet:
            sys.stderr.write(f"{message}\n")

    return say


def _show_logs(text: str) -> None:
    if text:
        sys.stderr.write(text)


def _topology_prepare(
    c: Context,
    profile: str,
    *,
    system: str,
    engine: str | None,
    tag: str | None,
    override_input: list[str] | None,
    builders: str | None,
    option: list[str] | None,
    **options: Any,
) -> tuple[Options, ImageResult]:
    """Check the topology options, then build (or find up to date) the peers' image.

    The options first: a typo must not cost a build that may take minutes.
    """
    from rpbuild import engine as engines
    from rpbuild import views
    from rpbuild.build import BuildOptions, build_image
    from rpbuild.topology import lifecycle as topology

    build = BuildOptions(
        system=system, engine=engine, tag=tag, nix=nix_options(override_input, builders, option)
    )
    opts = _topology_options(**options)
    # What the user typed first (a usage error is one whatever the machine has), then
    # what the engine must offer.
    topology.validate_options(opts)
    _topology_profile(c, profile, userspace=opts.userspace_wireguard)
    topology.validate_options(opts, engines.detect(build.engine))
    with views.build_progress(sys.stderr, quiet=c.quiet, verbose=c.verbose) as progress:
        built = build_image(
            c.project(),
            profile,
            build,
            notify=progress.notify,
            on_log=progress.on_log,
        )
    return opts, built


@app.command("compose")
def compose_file(
    ctx: typer.Context,
    profile: TopologyProfileOpt = "with-wireguard",
    ip: IpOpt = "dual",
    userspace_wireguard: UserspaceOpt = False,
    standin_rekey_seconds: RekeyOpt = None,
    tag: TopologyTagOpt = None,
    subnet4: Subnet4Opt = None,
    subnet6: Subnet6Opt = None,
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
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Write the compose file of the two-peer topology (services server and client)."""
    from rpbuild.build import reference_for
    from rpbuild.topology import compose as cmp

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    if output is not None:
        cmp.check_output(output)
    file_format = fmt or cmp.format_for(output)
    prof = _topology_profile(c, profile, userspace=userspace_wireguard)
    spec = cmp.TopologySpec(
        image=reference_for(prof, tag),
        ip=ip,
        userspace_wireguard=userspace_wireguard,
        standin_rekey_seconds=standin_rekey_seconds,
        subnet4=subnet4 or cmp.DEFAULT_SUBNET4,
        subnet6=subnet6,  # None: the default for --ip 6 and dual, and none for --ip 4
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


def _topology_options(**kwargs: Any) -> Options:
    from rpbuild.topology.lifecycle import Options

    return Options(**kwargs)


@app.command("up")
def topology_up(
    ctx: typer.Context,
    profile: TopologyProfileOpt = "with-wireguard",
    ip: IpOpt = "dual",
    userspace_wireguard: UserspaceOpt = False,
    standin_rekey_seconds: RekeyOpt = None,
    subnet4: Subnet4Opt = None,
    subnet6: Subnet6Opt = None,
    name: NameOpt = "rpbuild",
    timeout: TimeoutOpt = 90.0,
    compose: Annotated[
        Path | None,
        typer.Option("--compose-file", help="Run this file (from `rpbuild compose`) instead."),
    ] = None,
    system: SystemOpt = "x86_64-linux",
    engine: EngineOpt = None,
    tag: TopologyTagOpt = None,
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build what is missing, start server and client, wait until the tunnel works."""
    from rpbuild import engine as engines
    from rpbuild.topology import lifecycle as topology

    c = _ctx(ctx, quiet=quiet or as_json, verbose=verbose)
    opts, built = _topology_prepare(
        c,
        profile,
        system=system,
        engine=engine,
        tag=tag,
        override_input=override_input,
        builders=builders,
        option=option,
        ip=ip,
        userspace_wireguard=userspace_wireguard,
        standin_rekey_seconds=standin_rekey_seconds,
        subnet4=subnet4,
        subnet6=subnet6,
        compose_file=compose,
        name=name,
        timeout=timeout,
    )
    topo = topology.up(
        c.project(),
        engines.detect(built.engine),
        built.reference,
        opts,
        notify=_say(c),
        on_container_logs=_show_logs,
    )
    if as_json:
        _print_json("up", topo.as_dict())
        return
    server, client = (topo.plan.tunnel_addresses(role) for role in ("server", "client"))
    tunnel = ", ".join(f"{server[fam]} <-> {client[fam]}" for fam in sorted(server))
    print(f"topology {topo.name} is up: tunnel {tunnel}")
    for role, cid in sorted(topo.containers.items()):
        print(f"  {role}: container {cid[:12]}")
    print(f"stop it with: rpbuild down --name {topo.name}")


@app.command("test")
def topology_test(
    ctx: typer.Context,
    profile: TopologyProfileOpt = "with-wireguard",
    ip: IpOpt = "dual",
    userspace_wireguard: UserspaceOpt = False,
    standin_rekey_seconds: RekeyOpt = None,
    subnet4: Subnet4Opt = None,
    subnet6: Subnet6Opt = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Compose project name (default: a fresh unique one)."),
    ] = None,
    timeout: TimeoutOpt = 90.0,
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
    system: SystemOpt = "x86_64-linux",
    engine: EngineOpt = None,
    tag: TopologyTagOpt = None,
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Bring the topology up, prove the tunnel both ways and the pre-shared key (and its
    renewal), and always tear it down."""
    from rpbuild import engine as engines
    from rpbuild.topology import lifecycle as topology

    c = _ctx(ctx, quiet=quiet or as_json, verbose=verbose)
    opts, built = _topology_prepare(
        c,
        profile,
        system=system,
        engine=engine,
        tag=tag,
        override_input=override_input,
        builders=builders,
        option=option,
        ip=ip,
        userspace_wireguard=userspace_wireguard,
        standin_rekey_seconds=standin_rekey_seconds,
        subnet4=subnet4,
        subnet6=subnet6,
        compose_file=compose,
        name=name,
        timeout=timeout,
        real_rosenpass=real_rosenpass,
    )
    try:
        checks = topology.test(
            c.project(),
            engines.detect(built.engine),
            built.reference,
            opts,
            notify=_say(c),
            on_check=lambda ch: (_say(c) if as_json else print)(ch.line()),
            on_container_logs=_show_logs,
        )
    except topology.TopologyFailed as exc:
        if as_json:
            _print_json("test", _test_document(built.reference, exc.checks, passed=False))
        raise
    if as_json:
        _print_json("test", _test_document(built.reference, checks, passed=True))
        return
    skipped = sum(1 for check in checks if check.skipped)
    print(f"passed: {len(checks) - skipped} checks, {skipped} skipped; nothing left running")


def _test_document(image: str, checks: Sequence[Check], *, passed: bool) -> dict[str, Any]:
    return {
        "image": image,
        "passed": passed,
        "checks": [
            {"name": ch.name, "ok": ch.ok, "skipped": ch.skipped, "detail": ch.detail}
            for ch in checks
        ],
    }


@app.command("down")
def topology_down(
    ctx: typer.Context,
    name: NameOpt = "rpbuild",
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Stop the topology `rpbuild up` started and remove its network and key volumes."""
    from rpbuild import engine as engines
    from rpbuild.topology import lifecycle as topology

    c = _ctx(ctx, quiet=quiet or as_json, verbose=verbose)
    topology.check_name(name)  # a typo is a usage error, whatever the engine
    removed = topology.down(c.project(), engines.detect(engine), name, notify=_say(c))
    if as_json:
        _print_json("down", {"name": name, "stopped": removed})
    elif not removed and not c.quiet:
        print(f"topology {name}: nothing to stop")


@app.command()
def sizes(
    ctx: typer.Context,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile(s) to measure (default: all).",
            autocompletion=_complete_profiles,
        ),
    ] = None,
    system: SystemOpt = "x86_64-linux",
    as_json: JsonOpt = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="A Markdown table for release notes.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a profile is over its budget.")
    ] = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare", metavar="OLD.json", help="Diff against an earlier --json report."
        ),
    ] = None,
    no_build: Annotated[
        bool, typer.Option("--no-build", help="Fail instead of building what is missing.")
    ] = False,
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Closure size of each profile and what each package adds, like `nix path-info -Sh`."""
    from rpbuild import memo, views
    from rpbuild import sizes as sz
    from rpbuild.errors import CheckFailed

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    if as_json and markdown:
        raise RpbuildError("--json and --markdown exclude each other")
    old = sz.load_baseline(compare, system) if compare is not None else None
    nix_opts = nix_options(override_input, builders, option)
    # A repeat run with everything built: the one `nix path-info` call.
    report = memo.cached_sizes(c.project(), profile or [], system, nix_opts)
    repeat = report is not None
    if report is None:
        from rpbuild.build import BuildOptions
        from rpbuild.measure import size_report

        opts = BuildOptions(system=system, nix=nix_opts)
        with views.build_progress(
            sys.stderr, quiet=c.quiet or as_json or markdown, verbose=c.verbose
        ) as progress:
            report = size_report(
                c.project(),
                profile or [],
                opts,
                no_build=no_build,
                notify=progress.notify,
                on_log=progress.on_log,
            )
    diff = sz.compare(old, report) if old is not None else None
    if as_json:
        _print_json("sizes", sz.to_json(report))
    elif markdown:
        sys.stdout.write(sz.render_markdown(report, diff))
    else:
        sz.render_terminal(report, c.console(), diff)
    if check:
        violations = sz.check_budgets(report)
        for violation in violations[1:]:
            sys.stderr.write(f"rpbuild: error: {violation.message()}\n")
        if violations:
            raise CheckFailed(violations[0].message())
    if repeat:
        _exit_now()


@app.command()
def sbom(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Option(
            "--profile", "-p", help="Profile to describe.", autocompletion=_complete_profiles
        ),
    ] = "minimal",
    system: SystemOpt = "x86_64-linux",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write it there (default: stdout)."),
    ] = None,
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """A CycloneDX 1.6 SBOM of the image: every store path in it, with hashes and licences."""
    from rpbuild import sbom as sb
    from rpbuild import views
    from rpbuild.build import BuildOptions
    from rpbuild.fsutil import atomic_write

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    opts = BuildOptions(system=system, nix=nix_options(override_input, builders, option))
    with views.build_progress(sys.stderr, quiet=c.quiet, verbose=c.verbose) as progress:
        text = sb.generate(
            c.project(), profile, opts, notify=progress.notify, on_log=progress.on_log
        )
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, text)


# --- release, verify, lock update ---------------------------------------------


@app.command()
def release(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Argument(metavar="VERSION", help="Release version, e.g. 1.2.0.")
    ] = None,
    old_version: Annotated[
        str | None, typer.Option("--version", hidden=True, help="Replaced by VERSION.")
    ] = None,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile(s) to release (default: all).",
            autocompletion=_complete_profiles,
        ),
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
        Path | None,
        typer.Option("--report", metavar="DIR", help="Write the release report into DIR."),
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            metavar="DIR",
            help="Earlier report to diff sizes against (default: newest next to DIR).",
        ),
    ] = None,
    tls_verify: Annotated[
        bool,
        typer.Option("--tls-verify/--no-tls-verify", help="Require HTTPS for the registry."),
    ] = True,
    override_input: OverrideOpt = None,
    allow_override_input: Annotated[
        bool,
        typer.Option(
            "--allow-override-input",
            help="Release from overridden inputs without --snapshot (the report says so).",
        ),
    ] = False,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    sign_by: Annotated[
        str | None,
        typer.Option(
            "--sign-by", metavar="FINGERPRINT", help="Sign every pushed tag with this GPG key."
        ),
    ] = None,
    sign_by_sigstore_private_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-by-sigstore-private-key",
            metavar="FILE",
            help="Sign every pushed tag with this sigstore key (not Debian 12's skopeo).",
        ),
    ] = None,
    sign_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--sign-passphrase-file", metavar="FILE", help="The signing key's passphrase."
        ),
    ] = None,
    registries_d: Annotated[
        Path | None,
        typer.Option(
            "--registries-d",
            metavar="DIR",
            help="skopeo's registries.d (where signatures go; default: the system's).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build, verify and push every chosen profile from committed pins; write a report."""
    from rpbuild import release as rel
    from rpbuild import views
    from rpbuild.signing import Signing

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
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
    options = rel.ReleaseOptions(
        version=version,
        profiles=tuple(profile or ()),
        systems=tuple(str(s) for s in system or ()),
        push=push,
        snapshot=snapshot,
        report=report,
        previous=previous,
        tls_verify=tls_verify,
        nix=nix_options(override_input, builders, option),
        allow_override_input=allow_override_input,
        sign=sign,
        invocation=("rpbuild", *sys.argv[1:]),
    )
    with views.build_progress(sys.stderr, quiet=c.quiet or as_json, verbose=c.verbose) as progress:
        result = rel.release(c.project(), options, notify=progress.notify, on_log=progress.on_log)
    if as_json:
        _print_json("release", result.report)
    else:
        print("\n".join(rel.summary_lines(result)))
    if not result.verified:
        sys.stderr.write("rpbuild: warning: not every image is reproducible (see the report)\n")


@app.command("verify-release")
def verify_release(
    ctx: typer.Context,
    report: Annotated[Path, typer.Argument(help="A release report directory.")],
    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="FILE", help="The GPG public key the tags are signed by."),
    ] = None,
    sigstore_key: Annotated[
        Path | None,
        typer.Option(
            "--sigstore-key", metavar="FILE", help="The sigstore public key they are signed by."
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="Your own containers-policy.json."),
    ] = None,
    registries_d: Annotated[
        Path | None,
        typer.Option("--registries-d", metavar="DIR", help="skopeo's registries.d."),
    ] = None,
    tls_verify: Annotated[
        bool,
        typer.Option("--tls-verify/--no-tls-verify", help="Require HTTPS for the registry."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check a release against its registry: digests, signatures, SBOMs and provenance."""
    from rpbuild import verify_release as vr

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
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
    if as_json:
        _print_json(
            "verify-release", {"ok": not failed, "checks": [check.as_dict() for check in checks]}
        )
    elif not c.quiet:
        print("\n".join(check.line() for check in checks))
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        first = failed[0]
        raise vr.VerifyFailed(f"{first.subject}: {first.what}: {first.detail}{more}")


@app.command()
def verify(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Option(
            "--profile", "-p", help="Profile to verify.", autocompletion=_complete_profiles
        ),
    ] = "minimal",
    system: SystemOpt = "x86_64-linux",
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Rebuild a profile's image (nix build --rebuild) and compare the image digests."""
    from rpbuild import release as rel
    from rpbuild import views

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    opts = nix_options(override_input, builders, option)
    with views.build_progress(sys.stderr, quiet=c.quiet or as_json, verbose=c.verbose) as progress:
        result = rel.verify(
            c.project(), profile, system, opts, notify=progress.notify, on_log=progress.on_log
        )
    if as_json:
        _print_json("verify", result.as_dict())
    elif result.reproducible:
        print(f"{profile} ({system}): reproducible, image {result.image_id}")
    if not result.reproducible:
        raise rel.NotReproducible(f"{profile} ({system}): not reproducible: {result.reason}")


@lock_app.command("update")
def lock_update(
    ctx: typer.Context,
    inputs: Annotated[
        list[str] | None, typer.Argument(metavar="[INPUT]...", help="Inputs (default: all).")
    ] = None,
    option: NixOptionOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Update flake.lock (some or all inputs) and show what changed."""
    from rpbuild import release as rel
    from rpbuild import views

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    opts = nix_options(None, None, option)
    with views.build_progress(sys.stderr, quiet=c.quiet or as_json, verbose=c.verbose) as progress:
        result = rel.update_lock(c.project(), inputs or [], opts, notify=progress.notify)
    if as_json:
        changes = [
            {
                "input": ch.path,
                "old": ch.old.as_dict() if ch.old else None,
                "new": ch.new.as_dict() if ch.new else None,
            }
            for ch in result.changes
        ]
        _print_json("lock-update", {"changed": bool(changes), "changes": changes})
        return
    print("\n".join(rel.lock_changes_lines(result)))


# Options that take two values, like nix's own; typer takes NAME=VALUE, so the
# two-word form is joined before parsing.
_PAIR_OPTIONS = ("--override-input", "--option")


def join_pairs(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg in _PAIR_OPTIONS and i + 2 < len(argv):
            first, second = argv[i + 1], argv[i + 2]
            if "=" not in first and not first.startswith("-") and not second.startswith("-"):
                out.extend([arg, f"{first}={second}"])
                i += 3
                continue
        out.append(arg)
        i += 1
    return out


# --- image ------------------------------------------------------------------

System = Literal["x86_64-linux", "aarch64-linux"]  # project.SYSTEMS


class Systems(StrEnum):
    """The systems as an enum: typer takes a list of choices only as one."""

    X86_64 = "x86_64-linux"
    AARCH64 = "aarch64-linux"


SystemOpt = Annotated[System, typer.Option("--system", help="Nix system to build for.")]
EngineOpt = Annotated[
    Literal["docker", "podman"] | None,
    typer.Option("--engine", help="Container engine (default: docker if installed)."),
]
OverrideOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--override-input",
        metavar="INPUT URL",
        help="Use URL for a flake input, e.g. --override-input rosenpass path:../rosenpass.",
    ),
]
BuildersOpt = Annotated[
    str | None, typer.Option("--builders", help="Passed to nix: remote builders to use.")
]
NixOptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", metavar="NAME VALUE", help="Passed to nix as --option NAME VALUE."),
]


def _pairs(values: list[str] | None, option: str) -> tuple[tuple[str, str], ...]:
    from rpbuild.errors import RpbuildError

    out = []
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep:
            raise RpbuildError(f"{option} takes two values: NAME VALUE (got {value!r})")
        if not name.strip():
            raise RpbuildError(f"{option}: empty NAME (before {rest!r})")
        out.append((name, rest))
    return tuple(out)


def nix_options(
    overrides: list[str] | None, builders: str | None, options: list[str] | None
) -> NixOptions:
    from rpbuild.nix import NixOptions

    return NixOptions(
        overrides=_pairs(overrides, "--override-input"),
        builders=builders,
        options=_pairs(options, "--option"),
    )


@app.command()
def image(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Option(
            "--profile", "-p", help="Profile to build.", autocompletion=_complete_profiles
        ),
    ] = "minimal",
    system: SystemOpt = "x86_64-linux",
    engine: EngineOpt = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Image reference (default: rosenpass:PROFILE).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when up to date.")] = False,
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build a profile's image with nix and load it into Docker or Podman."""
    from rpbuild import memo, views

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    if not force:  # a repeat run: one `image inspect` when nothing changed
        overrides = _pairs(override_input, "--override-input")
        cached = memo.cached_image(
            c.project(), profile=profile, system=system, engine=engine, tag=tag,
            overrides=overrides,
        )  # fmt: skip
        if cached is not None:
            if as_json:
                _print_json("image", cached.as_dict())
            else:
                views.image_result(sys.stdout, cached)
            _exit_now()
    from rpbuild.build import BuildOptions, build_image

    opts = BuildOptions(
        system=system,
        engine=engine,
        tag=tag,
        force=force,
        nix=nix_options(override_input, builders, option),
    )
    with views.build_progress(sys.stderr, quiet=c.quiet or as_json, verbose=c.verbose) as progress:
        result = build_image(
            c.project(), profile, opts, notify=progress.notify, on_log=progress.on_log
        )
    if as_json:
        _print_json("image", result.as_dict())
    else:
        views.image_result(sys.stdout, result)


def _exit_now() -> None:
    """End a repeat run or a help that succeeded without the interpreter's teardown.

    Tearing down the ~150 modules a typer CLI loads costs about 10 ms of CPU, a tenth
    of an up-to-date `image` or `sizes` (bench/). Only read-only paths take it (the
    repeat runs, the help): everything they wrote is flushed or closed, they leave no
    temporary files, no threads and no atexit work behind.
    """
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    # A shell without job control starts `rpbuild ... &` with SIGINT ignored; a SIGINT
    # sent to rpbuild must still stop it with its cleanup, as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = join_pairs(sys.argv[1:])
    if "_RPBUILD_COMPLETE" not in os.environ:  # completion reads its words from the environment
        _keep_only_what_runs(argv)
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
            _exit_now()
        sys.stderr.write(f"rpbuild: error: {one_line(_usage_error(exc))}\n")
        sys.exit(ExitCode.USAGE)
    if code == ExitCode.INTERRUPTED:  # Ctrl-C outside a child: click made it exit 130
        sys.stderr.write("rpbuild: interrupted\n")
    if code in (0, None) and not _RAN:  # only help was printed: nothing to tear down
        _exit_now()
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _command_word(argv: list[str]) -> str | None:
    """The command argv names (the first word after the root options), if any."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--project":
            i += 2
            continue
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not arg.startswith("-"):
            return arg
        i += 1
    return None


def _no_parameters() -> None:
    """Stands in for a command in the root help, which shows names and summaries only."""


def _keep_only_what_runs(argv: list[str]) -> None:
    """Typer turns every command's signature into click parameters before it parses a
    word (inspect.signature and type hints for each: about 10 ms, a fifth of `import
    typer`). Only the command argv names is built; for the root help or a mistyped
    command, the others keep their name and help but lose their parameters, which
    that output does not show. tests/test_cli_help.py compares the outputs."""
    import inspect

    from typer.models import CommandInfo

    word = _command_word(argv)
    named = [
        info for info in app.registered_commands if word is not None and word == _name_of(info)
    ]
    if named:
        app.registered_commands[:] = named
        app.registered_groups[:] = []
        return
    if word is not None and any(g.name == word for g in app.registered_groups):
        app.registered_commands[:] = []
        app.registered_groups[:] = [g for g in app.registered_groups if g.name == word]
        return
    app.registered_commands[:] = [
        CommandInfo(
            name=_name_of(info),
            help=info.help if info.help is not None else inspect.getdoc(info.callback),
            short_help=info.short_help,
            epilog=info.epilog,
            hidden=info.hidden,
            deprecated=info.deprecated,
            rich_help_panel=info.rich_help_panel,
            callback=_no_parameters,
        )
        for info in app.registered_commands
    ]


def _name_of(info: Any) -> str:
    """A command's name as typer derives it (the function's name, `_` as `-`)."""
    if info.name:
        return str(info.name)
    return str(info.callback.__name__).lower().replace("_", "-")


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
