"""The command line: parse arguments, call the domain modules, print results.

Domain errors become one line on stderr and an exit code here, at the
boundary, and nowhere else. Heavy modules are imported inside the commands so
that `rpbuild --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rpbuild.errors import RpbuildError, one_line

if TYPE_CHECKING:
    from rich.console import Console

    from rpbuild.profiles import Profile
    from rpbuild.project import Project

app = typer.Typer(
    name="rpbuild",
    help="Build minimal, reproducible rosenpass container images with Nix.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
profiles_app = typer.Typer(help="List the image profiles.", invoke_without_command=True)
lock_app = typer.Typer(help="Manage flake.lock.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(lock_app, name="lock")


@dataclass
class Context:
    project_dir: Path | None
    verbose: bool
    quiet: bool
    _project: Project | None = None

    def project(self) -> Project:
        from rpbuild.project import find_project

        if self._project is None:
            self._project = find_project(self.project_dir)
        return self._project

    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)


def _ctx(ctx: typer.Context, *, quiet: bool = False, verbose: bool = False) -> Context:
    """The root options, merged with -q/-v given after the command name."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    obj.quiet = obj.quiet or quiet
    if verbose and not obj.verbose:
        obj.verbose = True
        logging.getLogger().setLevel(logging.DEBUG)
    return obj


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log every command run.")]


@app.callback()
def _root(
    ctx: typer.Context,
    project: Annotated[
        Path | None,
        typer.Option("--project", help="Project directory (default: found from here upwards)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every command run.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")] = False,
) -> None:
    ctx.obj = Context(project_dir=project, verbose=verbose, quiet=quiet)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="rpbuild: %(message)s",
        stream=sys.stderr,
    )


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _load(c: Context) -> tuple[Project, dict[str, Profile]]:
    from rpbuild.profiles import load_profiles

    project = c.project()
    return project, load_profiles(project.profiles_dir)


# --- profiles ---------------------------------------------------------------


@profiles_app.callback()
def profiles_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The resolved profiles and their packages, as a table."""
    if ctx.invoked_subcommand is not None:
        return
    c = _ctx(ctx)
    _, profiles = _load(c)
    if as_json:
        _print_json({name: p.as_dict() for name, p in profiles.items()})
        return
    from rpbuild import views

    views.profiles_table(c.console(), list(profiles.values()))


@profiles_app.command("show")
def profiles_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Profile name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One profile with its packages and image settings."""
    from rpbuild.profiles import select

    c = _ctx(ctx)
    _, profiles = _load(c)
    profile = select(profiles, name)
    if as_json:
        _print_json(profile.as_dict())
        return
    from rpbuild import views

    views.profile_detail(c.console(), profile)


# --- init -------------------------------------------------------------------


@app.command()
def init(
    # A str: typer would turn '' into Path('.'), the current directory, without a word.
    directory: Annotated[str, typer.Argument(help="Where to create the project.")] = ".",
) -> None:
    """Create a project (profiles, templates, flake.lock) from rpbuild's built-in defaults."""
    from rpbuild.project import init_project

    for path in init_project(directory):
        print(f"created {path}")
    print(f"next: cd {directory} && rpbuild render && rpbuild image --profile minimal")


# --- render -----------------------------------------------------------------


@app.command()
def render(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 with a diff when flake.nix is stale.")
    ] = False,
) -> None:
    """Write flake.nix from the profiles and templates."""
    from rpbuild.errors import CheckFailed
    from rpbuild.render import diff_flake, render_flake, write_flake

    c = _ctx(ctx)
    project, profiles = _load(c)
    rendered = render_flake(project, profiles)
    if check:
        diff = diff_flake(project, rendered)
        if diff:
            sys.stdout.write(diff)
            raise CheckFailed(
                f"{project.flake_path}: not what the profiles and templates produce; "
                "run `rpbuild render`"
            )
        if not c.quiet:
            print(f"{project.flake_path}: up to date")
        return
    changed = write_flake(project, rendered)
    if not c.quiet:
        print(f"{project.flake_path}: {'written' if changed else 'up to date'}")


# --- two-peer topology ------------------------------------------------------

TopologyProfileOpt = Annotated[
    str,
    typer.Option("--profile", "-p", help="Profile of both peers' image (needs wg and ping)."),
]
IpOpt = Annotated[
    str,
    typer.Option("--ip", help="Address families in the tunnel and between peers: 4, 6 or dual."),
]
UserspaceOpt = Annotated[
    bool,
    typer.Option(
        "--userspace-wireguard",
        help="Give the containers /dev/net/tun for userspace WireGuard (wireguard-go), "
        "for hosts without the WireGuard kernel module.",
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


def _topology_profile(c: Context, name: str) -> Profile:
    """The profile, if its image has what the healthcheck and the checks run."""
    from rpbuild.compose import missing_tools
    from rpbuild.profiles import select

    _, profiles = _load(c)
    profile = select(profiles, name)
    missing = missing_tools([p.name for p in profile.packages])
    if missing:
        raise RpbuildError(
            f"profile {name} has no {' and no '.join(missing)}, which the healthchecks and "
            "tunnel checks run; use with-wireguard or debug"
        )
    return profile


def _say(c: Context) -> Any:
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
) -> tuple[Any, Any]:
    """Check the topology options, then build (or find up to date) the peers' image.

    The options first: a typo must not cost a build that may take minutes.
    """
    from rpbuild import engine as engines
    from rpbuild import topology, views
    from rpbuild.build import BuildOptions, build_image

    build = BuildOptions(
        system=system, engine=engine, tag=tag, nix=nix_options(override_input, builders, option)
    )
    opts = _topology_options(**options)
    topology.validate_options(opts, engines.detect(build.engine))
    _topology_profile(c, profile)
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
    tag: TopologyTagOpt = None,
    subnet4: Subnet4Opt = None,
    subnet6: Subnet6Opt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the compose file of the two-peer topology (services server and client)."""
    from rpbuild import compose as cmp
    from rpbuild.build import reference_for

    c = _ctx(ctx)
    if output is not None:
        cmp.check_output(output)
    prof = _topology_profile(c, profile)
    spec = cmp.TopologySpec(
        image=reference_for(prof, tag),
        ip=ip,
        userspace_wireguard=userspace_wireguard,
        subnet4=subnet4 or cmp.DEFAULT_SUBNET4,
        subnet6=subnet6,  # None: the default for --ip 6 and dual, and none for --ip 4
    )
    text = cmp.dump(cmp.document(spec))
    if output is None:
        sys.stdout.write(text)
        return
    cmp.write_output(output, text)
    if not c.quiet:
        print(
            f"{output}: written (docker-compose -f {output} up, "
            f"or `rpbuild up --compose-file {output}`)"
        )


def _topology_options(**kwargs: Any) -> Any:
    from rpbuild.topology import Options

    return Options(**kwargs)


@app.command("up")
def topology_up(
    ctx: typer.Context,
    profile: TopologyProfileOpt = "with-wireguard",
    ip: IpOpt = "dual",
    userspace_wireguard: UserspaceOpt = False,
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build what is missing, start server and client, wait until the tunnel works."""
    from rpbuild import engine as engines
    from rpbuild import topology

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
        say=_say(c),
        show_logs=_show_logs,
    )
    if as_json:
        _print_json(topo.as_dict())
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
            help="The images hold the real rosenpass: also check the pre-shared key it sets "
            "and its renewal (about 130 s).",
        ),
    ] = False,
    system: SystemOpt = "x86_64-linux",
    engine: EngineOpt = None,
    tag: TopologyTagOpt = None,
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Bring the topology up, prove the tunnel both ways, and always tear it down."""
    from rpbuild import engine as engines
    from rpbuild import topology

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
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
        subnet4=subnet4,
        subnet6=subnet6,
        compose_file=compose,
        name=name,
        timeout=timeout,
        real_rosenpass=real_rosenpass,
    )
    checks = topology.test(
        c.project(),
        engines.detect(built.engine),
        built.reference,
        opts,
        say=_say(c),
        report=print,
        show_logs=_show_logs,
    )
    skipped = sum(1 for check in checks if check.skipped)
    print(f"passed: {len(checks) - skipped} checks, {skipped} skipped; nothing left running")


@app.command("down")
def topology_down(
    ctx: typer.Context,
    name: NameOpt = "rpbuild",
    engine: EngineOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Stop the topology `rpbuild up` started and remove its network and key volumes."""
    from rpbuild import engine as engines
    from rpbuild import topology

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    removed = topology.down(c.project(), engines.detect(engine), name, say=_say(c))
    if not removed and not c.quiet:
        print(f"topology {name}: nothing to stop")


@app.command()
def sizes(
    ctx: typer.Context,
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", "-p", help="Profile(s) to measure (default: all)."),
    ] = None,
    system: SystemOpt = "x86_64-linux",
    as_json: Annotated[bool, typer.Option("--json", help="Exact bytes as JSON.")] = False,
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
    from rpbuild import sizes as sz
    from rpbuild import views
    from rpbuild.build import BuildOptions
    from rpbuild.errors import CheckFailed
    from rpbuild.measure import size_report

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    if as_json and markdown:
        raise RpbuildError("--json and --markdown exclude each other")
    old = sz.load_baseline(compare, system) if compare is not None else None
    opts = BuildOptions(system=system, nix=nix_options(override_input, builders, option))
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
        _print_json(sz.to_json(report))
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


# --- release, verify, lock update ---------------------------------------------


@app.command()
def release(
    ctx: typer.Context,
    version: Annotated[str, typer.Option("--version", help="Release version, e.g. 1.2.0.")],
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", "-p", help="Profile(s) to release (default: all)."),
    ] = None,
    system: Annotated[
        list[str] | None,
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build, verify and push every chosen profile from committed pins; write a report."""
    from rpbuild import release as rel
    from rpbuild import views

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
    options = rel.ReleaseOptions(
        version=version,
        profiles=tuple(profile or ()),
        systems=tuple(system or ()),
        push=push,
        snapshot=snapshot,
        report=report,
        previous=previous,
        tls_verify=tls_verify,
        nix=nix_options(override_input, builders, option),
        allow_override_input=allow_override_input,
    )
    with views.build_progress(sys.stderr, quiet=c.quiet or as_json, verbose=c.verbose) as progress:
        result = rel.release(c.project(), options, notify=progress.notify, on_log=progress.on_log)
    if as_json:
        _print_json(result.report)
    else:
        print("\n".join(rel.summary_lines(result)))
    if not result.verified:
        sys.stderr.write("rpbuild: warning: not every image is reproducible (see the report)\n")


@app.command()
def verify(
    ctx: typer.Context,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile to verify.")] = "minimal",
    system: SystemOpt = "x86_64-linux",
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
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
        _print_json(result.as_dict())
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
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
        _print_json(
            [
                {
                    "input": ch.path,
                    "old": ch.old.as_dict() if ch.old else None,
                    "new": ch.new.as_dict() if ch.new else None,
                }
                for ch in result.changes
            ]
        )
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

SystemOpt = Annotated[
    str, typer.Option("--system", help="Nix system to build for (x86_64-linux, aarch64-linux).")
]
EngineOpt = Annotated[
    str | None, typer.Option("--engine", help="docker or podman (default: docker if installed).")
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
) -> Any:
    from rpbuild.nix import NixOptions

    return NixOptions(
        overrides=_pairs(overrides, "--override-input"),
        builders=builders,
        options=_pairs(options, "--option"),
    )


@app.command()
def image(
    ctx: typer.Context,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile to build.")] = "minimal",
    system: SystemOpt = "x86_64-linux",
    engine: EngineOpt = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Image reference (default: rosenpass:PROFILE).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when up to date.")] = False,
    override_input: OverrideOpt = None,
    builders: BuildersOpt = None,
    option: NixOptionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build a profile's image with nix and load it into Docker or Podman."""
    from rpbuild import views
    from rpbuild.build import BuildOptions, build_image

    c = _ctx(ctx, quiet=quiet, verbose=verbose)
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
        _print_json(result.as_dict())
    else:
        views.image_result(sys.stdout, result)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM and SIGHUP stop rpbuild like Ctrl-C: children stopped, teardown run."""
    raise KeyboardInterrupt


def _usage_error(exc: Exception) -> str | None:
    """click's usage errors (vendored by newer typer) as one line, or None."""
    if not hasattr(exc, "format_message") or not hasattr(exc, "exit_code"):
        return None
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
    try:
        code = app(args=join_pairs(sys.argv[1:]), prog_name="rpbuild", standalone_mode=False)
    except RpbuildError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("rpbuild: interrupted\n")
        sys.exit(130)
    except OSError as exc:
        # A file the user named or that rpbuild needs cannot be read or written.
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"rpbuild: error: {one_line(f'{where}{exc.strerror or exc}')}\n")
        sys.exit(2)
    except Exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `rpbuild`: the help
            sys.stdout.write(exc.format_message() + "\n")  # type: ignore[attr-defined]
            sys.exit(0)
        message = _usage_error(exc)
        if message is None:
            if type(exc).__name__ == "Abort":
                sys.stderr.write("rpbuild: interrupted\n")
                sys.exit(130)
            raise
        sys.stderr.write(f"rpbuild: error: {one_line(message)}\n")
        sys.exit(2)
    if code == 130:  # Ctrl-C outside a child process: click turned it into exit 130
        sys.stderr.write("rpbuild: interrupted\n")
    sys.exit(code if isinstance(code, int) else 0)


def _report(exc: RpbuildError) -> None:
    """One line naming what is at fault; a failed build adds its log tail, -v any tail."""
    from rpbuild.errors import CommandError
    from rpbuild.nix import BuildFailed

    sys.stderr.write(f"rpbuild: error: {exc.message}\n")
    if isinstance(exc, CommandError) and exc.stderr_tail:
        show = isinstance(exc, BuildFailed) or logging.getLogger().isEnabledFor(logging.DEBUG)
        if show:
            for line in exc.stderr_tail.rstrip("\n").splitlines():
                sys.stderr.write(f"  | {line}\n")
    if exc.hint:
        sys.stderr.write(f"rpbuild: hint: {exc.hint}\n")
