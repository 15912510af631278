"""The command line's shared options, declared once, and what a command receives.

Typer reads a command's options from its signature, so options several commands take
would otherwise be spelled out in each. `command()` appends them instead: a command
declares only its own options and receives the shared ones as one value each (the
run's `Context` first, then one value per `Group`). Nothing here imports the domain:
`rpbuild --help` and the up-to-date `image` and `sizes` runs import this module.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Generic, Literal, TypeVar, cast

import typer

from rpbuild.errors import RpbuildError

if TYPE_CHECKING:
    from rich.console import Console
    from typer.models import OptionInfo

    from rpbuild.nix import NixOptions
    from rpbuild.profiles import Profile
    from rpbuild.project import Project
    from rpbuild.views.progress import ProgressDisplay

#: The `format` of every --json document: rpbuild-KIND/1; a new major number when a key
#: changes meaning or goes away (new keys may appear in any version).
JSON_FORMAT_VERSION = 1

#: Set once a command's body starts: a run that ends without one printed only help.
RAN: list[str] = []


# --- what every command receives ------------------------------------------------------


class Context:
    """The root options merged with a command's -q/-v/--json; a plain class (no
    dataclasses import before the command runs)."""

    def __init__(
        self, project_dir: Path | None, verbose: bool, quiet: bool, as_json: bool = False
    ) -> None:
        self.project_dir = project_dir
        self.verbose = verbose
        self.quiet = quiet
        # `profiles --json show`: the group's --json reaches the command
        self.as_json = as_json
        self._project: Project | None = None
        # A group's callback runs before its command: the command's name, if one follows.
        self.subcommand: str | None = None

    def project(self) -> Project:
        from rpbuild.project import find_project

        if self._project is None:
            self._project = find_project(self.project_dir)
        return self._project

    def load(self) -> tuple[Project, dict[str, Profile]]:
        project = self.project()
        return project, project.load_profiles()

    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)

    def progress(self, *, quiet: bool = False) -> ProgressDisplay:
        """Where a command's progress and nix's log go: nowhere but warnings with -q or
        --json (or `quiet`, when stdout carries the result)."""
        from rpbuild.views.progress import build_progress

        quiet = self.quiet or self.as_json or quiet
        return build_progress(sys.stderr, quiet=quiet, verbose=self.verbose)

    def notify(self, message: str) -> None:
        """Progress for a person on stderr; nothing with -q or --json."""
        if not (self.quiet or self.as_json):
            sys.stderr.write(f"{message}\n")


def print_json(kind: str, data: Mapping[str, object] | Sequence[object]) -> None:
    """One JSON document; `format` first, unless the document already names its own."""
    import json

    if isinstance(data, Mapping) and "format" in data:
        document: Mapping[str, object] = data
    else:
        body = data if isinstance(data, Mapping) else {"items": list(data)}
        document = {"format": f"rpbuild-{kind}/{JSON_FORMAT_VERSION}", **body}
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")


def set_verbose() -> None:
    from rpbuild import process

    process.set_verbose(True)


def context(
    ctx: typer.Context, *, quiet: bool = False, verbose: bool = False, as_json: bool = False
) -> Context:
    """The root options, merged with -q/-v (and a group's --json) given after a command name."""
    RAN.append(ctx.info_name or "?")
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    obj.quiet = obj.quiet or quiet
    obj.as_json = obj.as_json or as_json
    obj.subcommand = ctx.invoked_subcommand
    if verbose and not obj.verbose:
        obj.verbose = True
        set_verbose()
    return obj


# --- option types -----------------------------------------------------------------------


def complete_profiles(ctx: typer.Context, incomplete: str) -> list[str]:
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


def profile_option(help: str) -> OptionInfo:
    """`--profile/-p NAME`, completed from the project's profile files."""
    option = typer.Option("--profile", "-p", help=help, autocompletion=complete_profiles)
    return cast("OptionInfo", option)


def path_option(flag: str, metavar: str, help: str) -> OptionInfo:
    """An option naming a file or directory (`metavar` says which)."""
    return cast("OptionInfo", typer.Option(flag, metavar=metavar, help=help))


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log every command run.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON document (see `format`).")
]

System = Literal["x86_64-linux", "aarch64-linux"]  # project.SYSTEMS


class Systems(StrEnum):
    """The systems as an enum: typer takes a list of choices only as one."""

    X86_64 = "x86_64-linux"
    AARCH64 = "aarch64-linux"


SystemOpt = Annotated[System, typer.Option("--system", help="Nix system to build for.")]
Engine = Literal["docker", "podman"]
EngineOpt = Annotated[
    Engine | None,
    typer.Option("--engine", help="Container engine (default: docker if installed)."),
]
TagOpt = Annotated[
    str | None, typer.Option("--tag", help="Image reference (default: rosenpass:PROFILE).")
]
TlsVerifyOpt = Annotated[
    bool, typer.Option("--tls-verify/--no-tls-verify", help="Require HTTPS for the registry.")
]


# --- groups: options several commands take, received as one value ------------------------

T = TypeVar("T", covariant=True)


class Group(Generic[T]):
    """Options declared once for several commands; `make` turns their values into the one
    value the command receives under `keyword`."""

    def __init__(
        self,
        keyword: str,
        make: Callable[..., T],
        options: Sequence[tuple[str, object, object]],
    ) -> None:
        self.keyword = keyword
        self.make = make
        self.parameters = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
            for name, ann, default in options
        ]

    def take(self, values: dict[str, object]) -> T:
        """Remove this group's options from a command's arguments and make its value."""
        return self.make(**{p.name: values.pop(p.name) for p in self.parameters})


def _pairs(values: Sequence[str] | None, option: str) -> tuple[tuple[str, str], ...]:
    out = []
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep:
            raise RpbuildError(f"{option} takes two values: NAME VALUE (got {value!r})")
        if not name.strip():
            raise RpbuildError(f"{option}: empty NAME (before {rest!r})")
        out.append((name, rest))
    return tuple(out)


class NixArgs:
    """--override-input, --builders and --option as typed; checked when used, so that the
    up-to-date `image` run does not import the nix wrapper."""

    def __init__(
        self,
        override_input: Sequence[str] | None = None,
        builders: str | None = None,
        option: Sequence[str] | None = None,
    ) -> None:
        self.override_input = override_input
        self.builders = builders
        self.option = option

    def overrides(self) -> tuple[tuple[str, str], ...]:
        return _pairs(self.override_input, "--override-input")

    def options(self) -> NixOptions:
        from rpbuild.nix import NixOptions

        return NixOptions(
            overrides=self.overrides(),
            builders=self.builders,
            options=_pairs(self.option, "--option"),
        )


NixOptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", metavar="NAME VALUE", help="Passed to nix as --option NAME VALUE."),
]
NIX = Group(
    "nix",
    NixArgs,
    [
        (
            "override_input",
            Annotated[
                list[str] | None,
                typer.Option(
                    "--override-input",
                    metavar="INPUT URL",
                    help="Use URL for a flake input, "
                    "e.g. --override-input rosenpass path:../rosenpass.",
                ),
            ],
            None,
        ),
        (
            "builders",
            Annotated[
                str | None,
                typer.Option("--builders", help="Passed to nix: remote builders to use."),
            ],
            None,
        ),
        ("option", NixOptionOpt, None),
    ],
)


class TopologyArgs:
    """What describes the two peers: their image and the network between them."""

    def __init__(
        self,
        profile: str,
        ip: Literal["4", "6", "dual"],
        userspace_wireguard: bool,
        standin_rekey_seconds: float | None,
        subnet4: str | None,
        subnet6: str | None,
        tag: str | None,
    ) -> None:
        self.profile = profile
        self.ip = ip
        self.userspace_wireguard = userspace_wireguard
        self.standin_rekey_seconds = standin_rekey_seconds
        self.subnet4 = subnet4
        self.subnet6 = subnet6
        self.tag = tag


TOPOLOGY = Group(
    "topology",
    TopologyArgs,
    [
        (
            "profile",
            Annotated[str, profile_option("Profile of both peers' image (needs wg and ping).")],
            "with-wireguard",
        ),
        (
            "ip",
            Annotated[
                Literal["4", "6", "dual"],
                typer.Option("--ip", help="Address families in the tunnel and between peers."),
            ],
            "dual",
        ),
        (
            "userspace_wireguard",
            Annotated[
                bool,
                typer.Option(
                    "--userspace-wireguard",
                    help="Run WireGuard in userspace: the entrypoint starts wireguard-go as the "
                    "device before rp (needs a profile with wireguard-go; the containers get "
                    "/dev/net/tun). For hosts without the WireGuard kernel module.",
                ),
            ],
            False,
        ),
        (
            "standin_rekey_seconds",
            Annotated[
                float | None,
                typer.Option(
                    "--standin-rekey-seconds",
                    envvar="RPBUILD_STANDIN_REKEY_SECONDS",
                    help="Images built from the test stand-in rosenpass only: its rekey interval "
                    "(ROSENPASS_STANDIN_REKEY_SECONDS in the containers; `test` waits for it). "
                    "The real rosenpass rekeys after 120/130 s.",
                    show_default=False,
                ),
            ],
            None,
        ),
        ("tag", TagOpt, None),
        (
            "subnet4",
            Annotated[
                str | None,
                typer.Option(
                    "--subnet4", help="Private IPv4 subnet of the bridge between the peers."
                ),
            ],
            None,
        ),
        (
            "subnet6",
            Annotated[
                str | None,
                typer.Option(
                    "--subnet6", help="IPv6 subnet (in fd00::/8) of the bridge between the peers."
                ),
            ],
            None,
        ),
    ],
)


class RunArgs:
    """Where and how long a topology runs: `up` and `test` alike."""

    def __init__(self, timeout: float, system: System, engine: Engine | None) -> None:
        self.timeout = timeout
        self.system = system
        self.engine = engine


RUN = Group(
    "run",
    RunArgs,
    [
        (
            "timeout",
            Annotated[
                float, typer.Option("--timeout", help="Seconds to wait for the tunnel to come up.")
            ],
            90.0,
        ),
        ("system", SystemOpt, "x86_64-linux"),
        ("engine", EngineOpt, None),
    ],
)


# --- commands ------------------------------------------------------------------------------

_CTX = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
_JSON = inspect.Parameter(
    "as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt
)
_QUIET = inspect.Parameter(
    "quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOpt
)
_VERBOSE = inspect.Parameter(
    "verbose", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=VerboseOpt
)


class Command:
    """A command function with the shared options appended to what typer sees.

    The signature is made when typer asks for it, and typer asks only for the command
    that runs (fast_start), so the others' annotations are never evaluated.
    """

    def __init__(
        self, fn: Callable[..., None], groups: Sequence[Group[object]], *, json: bool
    ) -> None:
        self._fn = fn
        self._groups = groups
        self._json = json
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        # typing.get_type_hints (typer calls it) wants this; the signature has the types.
        self.__annotations__: dict[str, object] = {}
        self._signature: inspect.Signature | None = None

    @property
    def __signature__(self) -> inspect.Signature:
        if self._signature is None:
            own = list(inspect.signature(self._fn, eval_str=True).parameters.values())
            # The first parameter receives the Context, then one per group, by keyword.
            taken = {g.keyword for g in self._groups}
            mine = [
                p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                for p in own[1:]
                if p.name not in taken
            ]
            shared = [p for g in self._groups for p in g.parameters]
            tail = [_JSON] if self._json else []
            self._signature = inspect.Signature(
                [_CTX, *mine, *shared, *tail, _QUIET, _VERBOSE], return_annotation=None
            )
        return self._signature

    def __call__(self, **values: object) -> None:
        # click's Context, which typer.Context extends without changing
        ctx = cast("typer.Context", values.pop("ctx"))
        quiet, verbose = bool(values.pop("quiet")), bool(values.pop("verbose"))
        as_json = bool(values.pop("as_json")) if self._json else False
        c = context(ctx, quiet=quiet, verbose=verbose, as_json=as_json)
        for group in self._groups:
            values[group.keyword] = group.take(values)
        self._fn(c, **values)


def command(*groups: Group[object], json: bool = True) -> Callable[[Callable[..., None]], Command]:
    """Give a command -q, -v (and --json unless json=False) and the groups' options."""

    def wrap(fn: Callable[..., None]) -> Command:
        return Command(fn, groups, json=json)

    return wrap


# --- argv ------------------------------------------------------------------------------

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
