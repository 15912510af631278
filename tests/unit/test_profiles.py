"""Profiles: resolution along extends, and one clear error per kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild.errors import ProfileError
from rpbuild.profiles import load_profiles, parse_size, select

REPO = Path(__file__).resolve().parents[2]

SEED_REQUIRED = ["rosenpass", "coreutils-full", "iana-etc", "gnugrep", "iproute2"]
SEED_OPTIONAL = ["procps", "wireguard-tools", "iputils", "bash"]


def write(dir: Path, name: str, text: str) -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    path = dir / f"{name}.toml"
    path.write_text(text)
    return path


PKG = '[[package]]\nname = "{name}"\ndescription = "d"\nreason = "r"\n'


def test_shipped_profiles_match_the_original_package_table() -> None:
    profiles = load_profiles(REPO / "profiles")
    assert list(profiles) == ["debug", "minimal", "with-wireguard"]
    minimal = profiles["minimal"]
    assert [p.name for p in minimal.packages] == SEED_REQUIRED
    assert all(p.required for p in minimal.packages)
    assert minimal.packages[0].source == "rosenpass"
    debug = profiles["debug"]
    names = [p.name for p in debug.packages]
    assert set(SEED_REQUIRED + SEED_OPTIONAL) <= set(names)
    assert {"iptables", "tcpdump"} <= set(names)
    assert all(not p.required for p in debug.packages if p.name in SEED_OPTIONAL)
    assert debug.chain == ("debug", "with-wireguard", "minimal")
    assert all(p.description and p.reason for p in debug.packages)
    assert [p.origin for p in debug.packages][:5] == ["minimal"] * 5
    assert profiles["with-wireguard"].image.reference == "rosenpass:with-wireguard"


def test_extends_inherits_image_settings_and_merges_tables(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base",
        '[image]\nname = "rp"\nenv = { A = "1", B = "2" }\nlabels = { l = "x" }\n'
        + PKG.format(name="a"),
    )
    write(
        tmp_path,
        "child",
        'extends = "base"\n[image]\nenv = { B = "3" }\n' + PKG.format(name="b"),
    )
    child = load_profiles(tmp_path)["child"]
    assert child.image.name == "rp"
    assert child.image.tag == "child"  # the tag is the profile's own, not inherited
    assert dict(child.image.env) == {"A": "1", "B": "3"}
    assert dict(child.image.labels) == {"l": "x"}
    assert [p.name for p in child.packages] == ["a", "b"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"p": 'description = "x\n'}, r"p\.toml: invalid TOML: .*line 1"),
        (
            {"p": 'descripton = "x"\n' + PKG.format(name="a")},
            r"unknown key 'descripton' \(did you mean 'description'\?\)",
        ),
        (
            {"p": "[image]\ntga = 'x'\n" + PKG.format(name="a")},
            r"\[image\]: unknown key 'tga' \(did you mean 'tag'\?\)",
        ),
        (
            {"p": PKG.format(name="a") + "reqired = true\n"},
            r"package 'a': unknown key 'reqired' \(did you mean 'required'\?\)",
        ),
        (
            {
                "a": 'extends = "b"\n' + PKG.format(name="x"),
                "b": 'extends = "a"\n' + PKG.format(name="y"),
            },
            r"extends cycle: a -> b -> a",
        ),
        ({"a": 'extends = "a"\n' + PKG.format(name="x")}, r"extends cycle: a -> a"),
        (
            {"a": 'extends = "nope"\n' + PKG.format(name="x")},
            r"extends unknown profile 'nope' \(known: a\)",
        ),
        (
            {"p": PKG.format(name="a") + PKG.format(name="a")},
            r"p\.toml: package 'a' is listed twice",
        ),
        (
            {"b": PKG.format(name="a"), "c": 'extends = "b"\n' + PKG.format(name="a")},
            r"c\.toml: package 'a' is listed twice \(already in profile 'b'\)",
        ),
        (
            {"p": PKG.format(name="a") + 'attr = "coreutils; x = builtins.abort \\"x\\""\n'},
            r"package 'a': invalid attribute path",
        ),
        ({"p": PKG.format(name="a") + 'attr = "a.${b}"\n'}, r"invalid attribute path"),
        ({"p": PKG.format(name="a") + 'source = "github"\n'}, r"unknown source 'github'"),
        (
            {"p": "[image]\ncreated = 'now'\n" + PKG.format(name="a")},
            r"'now' makes every build a different image",
        ),
        (
            {"p": "[image]\nmax_layers = 500\n" + PKG.format(name="a")},
            r"max_layers must be a whole number from 2 to 125",
        ),
        (
            {"p": "[image]\nenv = { 'A B' = 'x' }\n" + PKG.format(name="a")},
            r"image.env: invalid name 'A B'",
        ),
        (
            {"p": "[image]\ntag = 'a b'\n" + PKG.format(name="a")},
            r"image.tag 'a b': ' ' is not allowed in a tag",
        ),
        ({"p": "budget = 'lots'\n" + PKG.format(name="a")}, r"budget: invalid size 'lots'"),
        ({"p": 'description = "nothing"\n'}, r"p\.toml: the profile has no packages"),
        ({"Bad_Name": PKG.format(name="a")}, r"invalid profile name 'Bad_Name'"),
        ({"p": "[[package]]\ndescription = 'd'\n"}, r"p\.toml: package #1: 'name' is missing$"),
        (
            {"p": "[[package]]\nname = 5\n"},
            r"p\.toml: package #1: 'name' must be a string \(got 5\)$",
        ),
        (
            {"p": "[[package]]\nname = 'a b'\n"},
            r"package #1: 'name' must be a package name: .* \(got 'a b'\)$",
        ),
        (
            {"p": PKG.format(name="a") + "required = 'yes'\n"},
            r"package 'a': 'required' must be true or false \(got 'yes'\)$",
        ),
        (
            {"p": PKG.format(name="a") + "attr = ['x']\n"},
            r"package 'a': 'attr' must be a string \(got an array\)$",
        ),
        # Field errors come before "no packages": the mistyped field is the news.
        ({"p": "description = 5\n"}, r"p\.toml: description: must be a string \(got 5\)$"),
        ({"p": "budget = 'lots'\n"}, r"p\.toml: budget: invalid size 'lots'"),
        ({"p": "[image]\nlabels = { a = 1 }\n"}, r"image\.labels\.a: must be a string"),
        ({"p": "budget = '0 MiB'\n" + PKG.format(name="a")}, r"budget: invalid size '0 MiB'"),
    ],
)
def test_bad_profiles_give_one_line_naming_the_file(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(ProfileError, match=message) as info:
        load_profiles(tmp_path)
    text = str(info.value)
    assert "\n" not in text
    assert ".toml" in text
    assert "None" not in text  # a missing value is said in words


def test_unknown_profile_lists_the_known_ones() -> None:
    profiles = load_profiles(REPO / "profiles")
    with pytest.raises(
        ProfileError,
        match=r"unknown profile 'minmal' \(did you mean 'minimal'\? known: debug, minimal, with-wireguard\)",
    ):
        select(profiles, "minmal")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("110 MiB", 110 * 1024**2),
        ("94 MB", 94_000_000),
        ("1.5 GiB", int(1.5 * 1024**3)),
        (1234, 1234),
        ("512", 512),
    ],
)
def test_sizes_parse(text: str | int, expected: int) -> None:
    assert parse_size(text, where="x") == expected


def test_spec_is_data_only(tmp_path: Path) -> None:
    write(
        tmp_path, "p", '[image]\nenv = { X = "${builtins.currentTime}" }\n' + PKG.format(name="a")
    )
    spec = load_profiles(tmp_path)["p"].spec()
    assert spec["image"]["env"] == {"X": "${builtins.currentTime}"}
    assert spec["packages"] == [
        {
            "name": "a",
            "source": "nixpkgs",
            "attrPath": ["a"],
            "description": "d",
            "reason": "r",
            "required": False,
        }
    ]


def test_a_huge_budget_does_not_overflow(tmp_path: Path) -> None:
    write(tmp_path, "p", f"budget = '{'9' * 400} MiB'\n" + PKG.format(name="a"))
    assert load_profiles(tmp_path)["p"].budget == int("9" * 400) * 1024**2


@pytest.mark.parametrize(
    "label",
    [
        "dev.rpbuild.profile",
        "dev.rpbuild.fingerprint",
        "dev.rpbuild.anything-new",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.created",
    ],
)
def test_labels_rpbuild_records_cannot_be_set(tmp_path: Path, label: str) -> None:
    write(tmp_path, "p", f'[image]\nlabels = {{ "{label}" = "x" }}\n' + PKG.format(name="a"))
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'p.toml'}: image.labels: '{label}' is set by rpbuild")
    assert "rpbuild's labels: dev.rpbuild.*, org.opencontainers.image.version" in text
    assert info.value.hint


def test_descriptive_labels_can_be_replaced_and_others_added(tmp_path: Path) -> None:
    labels = {
        "org.opencontainers.image.title": "t",
        "org.opencontainers.image.description": "d",
        "org.opencontainers.image.source": "https://example.org",
        "dev.rpbuildx": "not ours",
        "com.example.team": "net",
    }
    body = ", ".join(f'"{k}" = "{v}"' for k, v in labels.items())
    write(tmp_path, "p", f"[image]\nlabels = {{ {body} }}\n" + PKG.format(name="a"))
    assert dict(load_profiles(tmp_path)["p"].image.labels) == labels


def test_a_profile_that_is_not_a_file_is_named(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    write(profiles, "good", PKG.format(name="a"))
    cases = {
        "self": "a symlink that loops back to itself, not a profile file",
        "dangling": "a symlink to nowhere.toml, which does not exist",
        "x": "a directory, not a profile file",
    }
    for name, message in cases.items():
        path = profiles / f"{name}.toml"
        if name == "self":
            path.symlink_to(path.name)
        elif name == "dangling":
            path.symlink_to("nowhere.toml")
        else:
            path.mkdir()
        with pytest.raises(ProfileError) as info:
            load_profiles(profiles)
        assert str(info.value) == f"{path}: {message}"
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()


def test_a_symlinked_profile_is_named_by_its_own_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "elsewhere", "real", "description = 5\n")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "mine.toml").symlink_to(tmp_path / "elsewhere" / "real.toml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError, match=r"^profiles/mine\.toml: description"):
        load_profiles(profiles)


def test_an_empty_profiles_directory_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    assert str(info.value) == f"{tmp_path}: no profiles (*.toml) here; add one or run rpbuild init"


def test_a_name_too_long_says_so_and_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "a" * 200, PKG.format(name="a"))
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    assert str(info.value) == f"{path}: profile name too long (200 characters; at most 63)"
    path.unlink()
    write(tmp_path, "a" * 63, PKG.format(name="a"))
    assert list(load_profiles(tmp_path)) == ["a" * 63]


def test_hidden_files_are_not_profiles(tmp_path: Path) -> None:
    """Emacs keeps a `.#NAME.toml` lock symlink, often dangling, while a file is edited."""
    write(tmp_path, "minimal", PKG.format(name="a"))
    (tmp_path / ".#minimal.toml").symlink_to("root@host.1234:1700000000")
    (tmp_path / ".draft.toml").write_text("not = [valid")
    assert list(load_profiles(tmp_path)) == ["minimal"]
    (tmp_path / "minimal.toml").unlink()
    with pytest.raises(ProfileError, match="no profiles"):
        load_profiles(tmp_path)
