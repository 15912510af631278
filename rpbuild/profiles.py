"""Image profiles: TOML files, validated and resolved along their `extends` chains.

Profile values end up inside Nix code, so everything is checked against strict
grammars here and later passed to Nix only as JSON data.
"""

from __future__ import annotations

import calendar
import difflib
import errno
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from rpbuild import reference
from rpbuild.errors import ProfileError
from rpbuild.fsutil import load_toml, profile_files

SOURCES = ("nixpkgs", "rosenpass")
DEFAULT_CREATED = "1970-01-01T00:00:01Z"
DEFAULT_ENTRYPOINT = ("/bin/rpbuild-entrypoint",)
DEFAULT_MAX_LAYERS = 100
# Docker refuses images with more than about 125 layers.
MAX_LAYERS_LIMIT = 125

# A profile's name becomes its default image tag and names it on every command line.
PROFILE_NAME_MAX = 63
PROFILE_NAME_RE = re.compile(rf"^[a-z0-9][a-z0-9-]{{0,{PROFILE_NAME_MAX - 1}}}$")
PACKAGE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")
ATTR_PART_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]{0,99}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CREATED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$", re.ASCII)
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$")
_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}

TOP_KEYS = ("description", "extends", "budget", "image", "package")
IMAGE_KEYS = ("name", "tag", "entrypoint", "cmd", "env", "labels", "created", "max_layers")
PACKAGE_KEYS = ("name", "source", "attr", "description", "reason", "required")

# Labels the flake template sets from the build itself (templates/flake.nix.j2); they
# override a profile's labels there, so a profile that sets one is refused here instead
# of being silently ignored.
RPBUILD_LABEL_PREFIX = "dev.rpbuild."
RPBUILD_OCI_LABELS = (
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
)


@dataclass(frozen=True)
class Package:
    name: str
    source: str
    attr: tuple[str, ...]
    description: str
    reason: str
    required: bool
    origin: str  # the profile that lists it

    @property
    def attr_path(self) -> str:
        return ".".join(self.attr)


@dataclass(frozen=True)
class ImageSettings:
    name: str
    tag: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    created: str
    max_layers: int

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    extends: str | None
    chain: tuple[str, ...]  # this profile first, then its ancestors
    budget: int | None
    image: ImageSettings
    packages: tuple[Package, ...]
    # The file's bytes as parsed: what flake.nix is rendered from is hashed from these,
    # not from a second read that an edit in between could make disagree.
    source: bytes = field(default=b"", repr=False, compare=False)

    @property
    def rosenpass(self) -> dict[str, str] | None:
        """Which package is rosenpass itself and where it comes from ("flake" or
        "nixpkgs"): the flake template takes the image's version and revision labels
        from it. None when the profile has no rosenpass."""
        for p in self.packages:
            if p.source == "rosenpass":
                return {"package": p.name, "source": "flake"}
            if p.source == "nixpkgs" and p.attr == NIXPKGS_ROSENPASS:
                return {"package": p.name, "source": "nixpkgs"}
        return None

    def _image(self, *, layers_key: str) -> dict[str, Any]:
        return {
            "name": self.image.name,
            "tag": self.image.tag,
            "entrypoint": list(self.image.entrypoint),
            "cmd": list(self.image.cmd),
            "env": dict(sorted(self.image.env.items())),
            "labels": dict(sorted(self.image.labels.items())),
            "created": self.image.created,
            layers_key: self.image.max_layers,
        }

    def spec(self) -> dict[str, Any]:
        """The data the flake template hands to Nix (through builtins.fromJSON)."""
        return {
            "rosenpass": self.rosenpass,
            "description": self.description,
            "image": self._image(layers_key="maxLayers"),  # dockerTools' argument name
            "packages": [
                {
                    "name": p.name,
                    "source": p.source,
                    "attrPath": list(p.attr),
                    "description": p.description,
                    "reason": p.reason,
                    "required": p.required,
                }
                for p in self.packages
            ],
        }

    def definition(self) -> dict[str, Any]:
        """What defines the image: the spec without the packages' documentation."""
        spec = self.spec()
        spec["name"] = self.name
        spec["packages"] = [
            {k: v for k, v in pkg.items() if k in ("name", "source", "attrPath")}
            for pkg in spec["packages"]
        ]
        return spec

    def as_dict(self) -> dict[str, Any]:
        """Everything about the resolved profile, for `--json`."""
        return {
            "name": self.name,
            "file": str(self.path),
            "description": self.description,
            "extends": self.extends,
            "chain": list(self.chain),
            "budget": self.budget,
            "image": self._image(layers_key="max_layers"),  # snake_case, as every --json
            "packages": [
                {
                    "name": p.name,
                    "source": p.source,
                    "attr": p.attr_path,
                    "description": p.description,
                    "reason": p.reason,
                    "required": p.required,
                    "from": p.origin,
                }
                for p in self.packages
            ],
        }


@dataclass
class _Raw:
    name: str
    path: Path
    data: dict[str, Any]
    image: dict[str, Any] = field(default_factory=dict)
    source: bytes = b""


def instant_problem(text: str) -> str | None:
    """Why a YYYY-MM-DDTHH:MM:SS[.frac]Z stamp names no real instant, or None.

    The pattern alone passes month 13, February 30 and year 0; nix would build such an
    image and only the engine refuse it, naming no profile. Leap seconds (:60) are
    refused too: the engine's parser (Go's time) rejects them.
    """
    year, month, day = (int(x) for x in text[:10].split("-"))
    hour, minute, second = (int(x) for x in text[11:19].split(":"))
    if year == 0:
        return "there is no year 0"
    if not 1 <= month <= 12:
        return f"there is no month {month}"
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        return f"{calendar.month_name[month]} {year} has days 1 to {days}"
    if hour > 23 or minute > 59 or second > 59:
        return f"{text[11:19]} is not a time of day (00:00:00 to 23:59:59)"
    return None


def parse_size(value: object, *, where: str) -> int:
    """Sizes as bytes (int) or strings like '110 MiB' or '94 MB'."""
    if isinstance(value, bool):
        raise ProfileError(f"{where}: a size must be a number of bytes or a string like '110 MiB'")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        m = SIZE_RE.match(value)
        if m:
            # Exact, not float: a long digit string must not overflow to inf.
            size = int(Fraction(m.group(1)) * _UNITS[m.group(2)])
            if size > 0:
                return size
    raise ProfileError(f"{where}: invalid size {value!r} (use bytes or e.g. '110 MiB', '94 MB')")


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when inside it."""
    return _display(path)


def _display(path: Path) -> str:
    # Only the parent is resolved: a symlinked profile is named by its own name (the
    # user's file), and a symlink loop or a dangling link cannot make naming it fail.
    try:
        return str((path.parent.resolve() / path.name).relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (3.11)
        return str(path)


def _unreadable(path: Path, exc: OSError) -> str:
    """Why a profile path cannot be read, in the user's terms rather than errno's."""
    if exc.errno == errno.ELOOP:
        return "a symlink that loops back to itself, not a profile file"
    if exc.errno == errno.ENOENT and path.is_symlink():
        try:
            return f"a symlink to {path.readlink()}, which does not exist"
        except OSError:
            pass
    if exc.errno == errno.EISDIR:
        return "a directory, not a profile file"
    return f"cannot read: {exc.strerror or exc}"


def _unknown_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = (
                f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
            )
            raise ProfileError(f"{where}: unknown key '{key}'{hint}")


def _kind(value: object) -> str:
    """A wrong value as TOML would spell it, for "must be X (got ...)" messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # TOML dates and times


def _string(value: object, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{where}: must be a string (got {_kind(value)})")
    if "\x00" in value:
        raise ProfileError(f"{where}: NUL characters cannot be passed to Nix")
    if not empty and not value.strip():
        raise ProfileError(f"{where}: must not be empty")
    return value


def _string_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ProfileError(f"{where}: expected a list of strings")
    return tuple(_string(v, f"{where}[{i}]") for i, v in enumerate(value))


def _string_table(value: object, where: str, key_re: re.Pattern[str] | None) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: expected a table of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        _string(k, f"{where}: key {k!r}", empty=False)
        if key_re is not None and not key_re.match(k):
            raise ProfileError(f"{where}: invalid name {k!r} (letters, digits and _ only)")
        out[k] = _string(v, f"{where}.{k}")
    return out


def _read(path: Path) -> _Raw:
    where = _display(path)
    name = path.stem
    if len(name) > PROFILE_NAME_MAX:
        raise ProfileError(
            f"{where}: profile name too long ({len(name)} characters; at most {PROFILE_NAME_MAX})"
        )
    if not PROFILE_NAME_RE.match(name):
        raise ProfileError(
            f"{where}: invalid profile name {name!r} (lower-case letters, digits and '-')"
        )
    try:
        source = path.read_bytes()
        data = load_toml(source.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{where}: not UTF-8 text") from None
    except OSError as exc:
        raise ProfileError(f"{where}: {_unreadable(path, exc)}") from None
    _unknown_keys(data, TOP_KEYS, where)
    image = data.get("image", {})
    if not isinstance(image, dict):
        raise ProfileError(f"{where}: [image] must be a table")
    _unknown_keys(image, IMAGE_KEYS, f"{where}: [image]")
    return _Raw(name=name, path=path, data=data, image=image, source=source)


def _packages(raw: _Raw) -> list[Package]:
    where = _display(raw.path)
    items = raw.data.get("package", [])
    if not isinstance(items, list):
        raise ProfileError(f"{where}: 'package' must be an array of tables ([[package]])")
    out: list[Package] = []
    for i, item in enumerate(items):
        pwhere = f"{where}: package #{i + 1}"
        if not isinstance(item, dict):
            raise ProfileError(f"{pwhere}: must be a table")
        if "name" not in item:
            raise ProfileError(f"{pwhere}: 'name' is missing")
        name = item["name"]
        if not isinstance(name, str):
            raise ProfileError(f"{pwhere}: 'name' must be a string (got {_kind(name)})")
        if not PACKAGE_NAME_RE.match(name):
            raise ProfileError(
                f"{pwhere}: 'name' must be a package name: letters, digits and _.+-, "
                f"starting with a letter, digit or _ (got {name!r})"
            )
        pwhere = f"{where}: package '{name}'"
        _unknown_keys(item, PACKAGE_KEYS, pwhere)
        source = item.get("source", "nixpkgs")
        if source not in SOURCES:
            raise ProfileError(f"{pwhere}: unknown source {source!r} (known: {', '.join(SOURCES)})")
        attr_text = item.get("attr", name)
        if not isinstance(attr_text, str):
            raise ProfileError(f"{pwhere}: 'attr' must be a string (got {_kind(attr_text)})")
        parts = tuple(attr_text.split("."))
        if not all(ATTR_PART_RE.match(p) for p in parts):
            raise ProfileError(
                f"{pwhere}: invalid attribute path {attr_text!r} "
                "(dot-separated names of letters, digits, _, ' and -)"
            )
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise ProfileError(
                f"{pwhere}: 'required' must be true or false (got {_kind(required)})"
            )
        out.append(
            Package(
                name=name,
                source=str(source),
                attr=parts,
                description=_string(item.get("description", ""), f"{pwhere}: description"),
                reason=_string(item.get("reason", ""), f"{pwhere}: reason"),
                required=required,
                origin=raw.name,
            )
        )
    return out


def _check_labels(labels: Mapping[str, str], where: str) -> None:
    """Refuse the labels rpbuild records about the build: the flake would override them."""
    for key in labels:
        if key.startswith(RPBUILD_LABEL_PREFIX) or key in RPBUILD_OCI_LABELS:
            ours = ", ".join((f"{RPBUILD_LABEL_PREFIX}*", *RPBUILD_OCI_LABELS))
            hint = (
                "set the image's date with `created` under [image]"
                if key == "org.opencontainers.image.created"
                else "labels may replace title, description and source, and add others"
            )
            raise ProfileError(
                f"{where}: image.labels: '{key}' is set by rpbuild itself "
                f"(rpbuild's labels: {ours})",
                hint=hint,
            )


def _resolve(
    name: str, raws: Mapping[str, _Raw], cache: dict[str, Profile], stack: list[str]
) -> Profile:
    if name in cache:
        return cache[name]
    raw = raws[name]
    where = _display(raw.path)
    if name in stack:
        cycle = " -> ".join([*stack[stack.index(name) :], name])
        raise ProfileError(f"{where}: extends cycle: {cycle}")
    parent_name = raw.data.get("extends")
    parent: Profile | None = None
    if parent_name is not None:
        if not isinstance(parent_name, str):
            raise ProfileError(f"{where}: 'extends' must be a profile name")
        if parent_name not in raws:
            known = ", ".join(sorted(raws))
            close = difflib.get_close_matches(parent_name, list(raws), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ProfileError(
                f"{where}: extends unknown profile '{parent_name}' ({hint}known: {known})"
            )
        parent = _resolve(parent_name, raws, cache, [*stack, name])

    img = raw.image
    base = parent.image if parent else None
    iname = _string(img.get("name", base.name if base else "rosenpass"), f"{where}: image.name")
    if (problem := name_length_problem(iname)) is not None:
        raise ProfileError(f"{where}: image.name too long: {problem}")
    tag = _string(img.get("tag", name), f"{where}: image.tag")
    try:
        reference.repository(iname, f"{where}: image.name")
        reference.check_tag(tag, f"{where}: image.tag")
    except reference.ReferenceError as exc:
        raise ProfileError(exc.message) from None
    created = _string(
        img.get("created", base.created if base else DEFAULT_CREATED), f"{where}: image.created"
    )
    if created == "now":
        raise ProfileError(
            f"{where}: image.created = 'now' makes every build a different image; use a fixed date"
        )
    if not CREATED_RE.match(created):
        raise ProfileError(
            f"{where}: image.created {created!r} is not a UTC timestamp like 1970-01-01T00:00:01Z"
        )
    problem = instant_problem(created)
    if problem is not None:
        raise ProfileError(f"{where}: image.created {created!r} is not a real instant: {problem}")
    max_layers = img.get("max_layers", base.max_layers if base else DEFAULT_MAX_LAYERS)
    if (
        isinstance(max_layers, bool)
        or not isinstance(max_layers, int)
        or not 2 <= max_layers <= MAX_LAYERS_LIMIT
    ):
        raise ProfileError(
            f"{where}: image.max_layers must be a whole number from 2 to {MAX_LAYERS_LIMIT}"
        )
    entrypoint = (
        _string_list(img["entrypoint"], f"{where}: image.entrypoint")
        if "entrypoint" in img
        else (base.entrypoint if base else DEFAULT_ENTRYPOINT)
    )
    cmd = (
        _string_list(img["cmd"], f"{where}: image.cmd")
        if "cmd" in img
        else (base.cmd if base else ())
    )
    env = {
        **(base.env if base else {}),
        **_string_table(img.get("env", {}), f"{where}: image.env", ENV_NAME_RE),
    }
    own_labels = _string_table(img.get("labels", {}), f"{where}: image.labels", None)
    _check_labels(own_labels, where)
    labels = {**(base.labels if base else {}), **own_labels}
    description = _string(raw.data.get("description", ""), f"{where}: description")
    budget = raw.data.get("budget")
    budget_bytes = None if budget is None else parse_size(budget, where=f"{where}: budget")

    own = _packages(raw)
    packages = list(parent.packages) if parent else []
    seen = {p.name: p for p in packages}
    for pkg in own:
        if pkg.name in seen:
            first = seen[pkg.name]
            also = "" if first.origin == name else f" (already in profile '{first.origin}')"
            raise ProfileError(f"{where}: package '{pkg.name}' is listed twice{also}")
        seen[pkg.name] = pkg
        packages.append(pkg)
    # Last: a profile with a mistyped field should hear about that field first.
    if not packages:
        raise ProfileError(f"{where}: the profile has no packages")

    profile = Profile(
        name=name,
        path=raw.path,
        source=raw.source,
        description=description,
        extends=parent_name,
        chain=(name, *(parent.chain if parent else ())),
        budget=budget_bytes,
        image=ImageSettings(
            name=iname,
            tag=tag,
            entrypoint=entrypoint,
            cmd=cmd,
            env=env,
            labels=labels,
            created=created,
            max_layers=max_layers,
        ),
        packages=tuple(packages),
    )
    cache[name] = profile
    return profile


#: nixpkgs' attributes for rosenpass (the daemon) and rosenpass-tools (`rp`, wrapped with
#: the tools it runs); the flake's `rosenpass` package holds both programs.
NIXPKGS_ROSENPASS = ("rosenpass",)
NIXPKGS_ROSENPASS_TOOLS = ("rosenpass-tools",)
#: The rosenpass flake outputs that nixpkgs' two packages stand for.
_FLAKE_ROSENPASS_ATTRS = (("rosenpass",), ("default",))


def with_rosenpass_source(profiles: Mapping[str, Profile], source: str) -> dict[str, Profile]:
    """The profiles with rosenpass taken from `source` (rpbuild.toml's rosenpass_source).

    With "nixpkgs", a package from the rosenpass flake becomes nixpkgs' `rosenpass` plus a
    `rosenpass-tools` package next to it (rp lives there): the profile then says exactly
    what the image holds, in `rpbuild profiles`, `sizes` and the rendered flake alike.
    """
    if source == "flake":
        return dict(profiles)
    out: dict[str, Profile] = {}
    for name, profile in profiles.items():
        packages: list[Package] = []
        for pkg in profile.packages:
            if pkg.source != "rosenpass":
                packages.append(pkg)
                continue
            origin = profiles[pkg.origin].path if pkg.origin in profiles else profile.path
            where = f"{_display(origin)}: package '{pkg.name}'"
            if pkg.attr not in _FLAKE_ROSENPASS_ATTRS:
                raise ProfileError(
                    f"{where}: the rosenpass flake's '{pkg.attr_path}' has no counterpart in "
                    "nixpkgs (rpbuild.toml: rosenpass_source = 'nixpkgs'); set "
                    "rosenpass_source = 'flake' to take it from the rosenpass flake"
                )
            tools = f"{pkg.name}-tools"
            if any(p.name == tools for p in profile.packages):
                raise ProfileError(
                    f"{where}: with rosenpass_source = 'nixpkgs' rpbuild adds a package "
                    f"'{tools}' (nixpkgs' rosenpass-tools, which holds rp), and the profile "
                    "already has one; rename it"
                )
            packages.append(replace(pkg, source="nixpkgs", attr=NIXPKGS_ROSENPASS))
            packages.append(
                replace(
                    pkg,
                    name=tools,
                    source="nixpkgs",
                    attr=NIXPKGS_ROSENPASS_TOOLS,
                    description="rp, the script that drives rosenpass and WireGuard "
                    "(nixpkgs' rosenpass-tools)",
                )
            )
        out[name] = replace(profile, packages=tuple(packages))
    return out


def load_profiles(directory: Path) -> dict[str, Profile]:
    """All profiles in a directory, resolved, keyed by name in sorted order."""
    # The directory in full: it may have been found by searching upwards, and which
    # directory rpbuild took for the project is the point of these two messages.
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such directory"
        raise ProfileError(
            f"{directory}: {what}; it should hold the profiles (*.toml)",
            hint="run `rpbuild init` to start a project from the built-in profiles",
        )
    raws = {raw.name: raw for raw in (_read(p) for p in profile_files(directory))}
    if not raws:
        raise ProfileError(f"{directory}: no profiles (*.toml) here; add one or run rpbuild init")
    cache: dict[str, Profile] = {}
    for name in sorted(raws):
        _resolve(name, raws, cache, [])
    return {name: cache[name] for name in sorted(cache)}


# Limits nix and the engine enforce, checked first so that they are named:
# a store path's name part is at most 211 characters, and dockerTools names derivations
# after the image name's last component (the longest: NAME-customisation-layer);
# a reference's name part (registry and path) is at most 255 characters (Docker's).
STORE_NAME_MAX = 211
_LONGEST_STORE_SUFFIX = "-customisation-layer"
IMAGE_BASENAME_MAX = STORE_NAME_MAX - len(_LONGEST_STORE_SUFFIX)
REFERENCE_NAME_MAX = 255


def name_length_problem(name: str) -> str | None:
    """Why an image name is too long for nix or the engine, or None."""
    if len(name) > REFERENCE_NAME_MAX:
        return f"the name is {len(name)} characters; image references allow {REFERENCE_NAME_MAX}"
    base = name.rsplit("/", 1)[-1]
    if len(base) > IMAGE_BASENAME_MAX:
        return (
            f"its last component is {len(base)} characters; nix store names allow "
            f"{STORE_NAME_MAX}, which leaves {IMAGE_BASENAME_MAX} for it "
            f"(dockerTools derives '{base[:8]}...{_LONGEST_STORE_SUFFIX}')"
        )
    return None


def select(profiles: Mapping[str, Profile], name: str) -> Profile:
    """One profile by name; an unknown name lists the known ones."""
    if name in profiles:
        return profiles[name]
    close = difflib.get_close_matches(name, list(profiles), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ProfileError(f"unknown profile '{name}' ({hint}known: {', '.join(profiles)})")
