"""Image writer of the rpbuild test stand-in for nixpkgs dockerTools.

Written for rpbuild's tests (not taken from nixpkgs). Run by the host's /usr/bin/python3,
as a nix builder (sub-commands below) and from the stream scripts it generates.

Sub-commands (argv[1]), as nix builders; they read the derivation's environment:
  customisation-layer  merge the contents into a root directory as symlinks, run
                       extraCommands there (busybox sh -e), write $out/layer.tar (the
                       customisation layer), $out/config.json and $out/contents.json
  stream-script        read the closure of the customisation layer (exportReferencesGraph
                       file "closure"), plan one layer per store path (most referenced
                       first, at most maxLayers - 1 store layers), write $out: a Python
                       script with the plan embedded that streams the docker-archive
  gzip-stream          run $stream and write its output gzipped (mtime 0, no name) to $out

Everything written is deterministic: tar entries sorted by name, uid/gid 0, no user or
group names, mtime 1, modes as found in the store (or in the customisation root).
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any, BinaryIO, cast

MTIME = 1
CHUNK = 1 << 20
STORE_DIR = "/nix/store"


class BuildError(Exception):
    pass


# --------------------------------------------------------------------------- tar writing


class HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.target.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def _tarinfo(arcname: str, st: os.stat_result | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = MTIME
    info.uid = 0
    info.gid = 0
    info.uname = ""
    info.gname = ""
    if st is not None:
        info.mode = stat.S_IMODE(st.st_mode)
    return info


def add_directory(tar: tarfile.TarFile, arcname: str, mode: int = 0o755) -> None:
    info = _tarinfo(arcname)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes, mode: int = 0o644) -> None:
    info = _tarinfo(arcname)
    info.type = tarfile.REGTYPE
    info.mode = mode
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_tree(tar: tarfile.TarFile, path: str, arcname: str) -> None:
    """Add path (file, symlink or directory, recursively, sorted) as arcname.

    Hard links are not detected: every regular file is stored in full.
    """
    st = os.lstat(path)
    info = _tarinfo(arcname, st)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        tar.addfile(info)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for child in sorted(os.listdir(path), key=os.fsencode):
            add_tree(tar, os.path.join(path, child), arcname + "/" + child)
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        with open(path, "rb") as handle:
            tar.addfile(info, handle)
    else:
        raise BuildError(f"cannot put {path} into a layer: not a file, directory or symlink")


def write_tar(target: IO[bytes], fill: Callable[[tarfile.TarFile], None]) -> tuple[str, int]:
    """Write a tar made by fill() to target; return (sha256 hex, size)."""
    writer = HashingWriter(target)
    with tarfile.open(fileobj=cast(IO[bytes], writer), mode="w|", format=tarfile.PAX_FORMAT) as tar:
        fill(tar)
    return writer.sha256.hexdigest(), writer.size


def store_layer(paths: Iterable[str]) -> Callable[[tarfile.TarFile], None]:
    def fill(tar: tarfile.TarFile) -> None:
        add_directory(tar, "nix")
        add_directory(tar, "nix/store")
        for path in sorted(paths, key=os.fsencode):
            add_tree(tar, path, path.lstrip("/"))

    return fill


def root_layer(root: str) -> Callable[[tarfile.TarFile], None]:
    def fill(tar: tarfile.TarFile) -> None:
        for child in sorted(os.listdir(root), key=os.fsencode):
            add_tree(tar, os.path.join(root, child), child)

    return fill


# --------------------------------------------------------------------------- builders


def _env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise BuildError(f"environment variable {name} is not set") from None


def _read_passed(name: str) -> str:
    """Read an attribute passed with passAsFile (or, failing that, in the environment)."""
    path = os.environ.get(name + "Path")
    if path is not None:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    return _env(name)


def merge_contents(source: str, target: str) -> None:
    """Merge one contents store path into the root: real directories, file symlinks.

    The first contents entry that provides a path wins; later ones are reported.
    """
    for name in sorted(os.listdir(source), key=os.fsencode):
        src = os.path.join(source, name)
        dst = os.path.join(target, name)
        src_is_dir = os.path.isdir(src) and not os.path.islink(src)
        if src_is_dir:
            if not os.path.lexists(dst):
                os.mkdir(dst)
                os.chmod(dst, 0o755)
            if os.path.isdir(dst) and not os.path.islink(dst):
                merge_contents(src, dst)
                continue
        elif not os.path.lexists(dst):
            os.symlink(src, dst)
            continue
        print(
            f"stand-in dockerTools: collision at /{os.path.relpath(dst, ROOT)}: "
            f"keeping {os.readlink(dst) if os.path.islink(dst) else 'the directory'}, ignoring {src}",
            file=sys.stderr,
        )


ROOT = ""


def build_customisation_layer() -> None:
    global ROOT
    out = _env("out")
    top = os.environ.get("NIX_BUILD_TOP") or os.getcwd()
    busybox = _env("bb")
    contents = json.loads(_read_passed("contentsJSON"))
    config = json.loads(_read_passed("configJSON"))
    extra_commands = _read_passed("extraCommands")

    ROOT = root = os.path.join(top, "root")
    os.mkdir(root)
    os.chmod(root, 0o755)
    for entry in contents:
        if not isinstance(entry, str) or not entry.startswith(STORE_DIR + "/"):
            raise BuildError(f"contents entry {entry!r} is not a store path")
        if not os.path.isdir(entry):
            raise BuildError(
                f"contents entry {entry} is not a directory and cannot be merged into /"
            )
        merge_contents(entry, root)

    if extra_commands.strip():
        applets = os.path.join(top, "applets")
        os.mkdir(applets)
        names = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True)
        for applet in names.stdout.split():
            os.symlink(busybox, os.path.join(applets, applet))
        env = {"PATH": applets, "HOME": "/homeless-shelter", "TMPDIR": top, "NIX_BUILD_TOP": top}
        result = subprocess.run([busybox, "sh", "-e", "-c", extra_commands], cwd=root, env=env)
        if result.returncode != 0:
            raise BuildError(f"extraCommands failed with exit status {result.returncode}")

    os.mkdir(out)
    with open(os.path.join(out, "layer.tar"), "wb") as handle:
        write_tar(handle, root_layer(root))
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, sort_keys=True, indent=2)
        handle.write("\n")
    with open(os.path.join(out, "contents.json"), "w", encoding="utf-8") as handle:
        json.dump(contents, handle, indent=2)
        handle.write("\n")


def read_references_graph(path: str) -> dict[str, set[str]]:
    """Parse an exportReferencesGraph file: per path, its line, the deriver line
    (empty), the number of references, one line per reference."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    graph: dict[str, set[str]] = {}
    i = 0
    while i < len(lines) and lines[i]:
        store_path = lines[i]
        count = int(lines[i + 2])
        refs = lines[i + 3 : i + 3 + count]
        graph[store_path] = {ref for ref in refs if ref != store_path}
        i += 3 + count
    return graph


def plan_layers(graph: dict[str, set[str]], root: str, max_layers: int) -> list[list[str]]:
    """Order the closure of root (root excluded) by popularity: the number of paths
    (root included) that depend on a path, directly or not. Most popular first; ties
    by name, then by path. One layer each, the tail merged so that at most
    max_layers - 1 store layers remain (one is left for the customisation layer)."""

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph.get(start, ()))
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            todo.extend(graph.get(path, ()))
        return seen

    nodes = [path for path in graph if path != root]
    popularity = {path: 0 for path in nodes}
    for ancestor in [root, *nodes]:
        for path in reachable(ancestor):
            if path != root and path != ancestor:
                popularity[path] += 1

    def key(path: str) -> tuple[int, str, str]:
        return (-popularity[path], os.path.basename(path)[33:], path)

    order = sorted(nodes, key=key)
    slots = max_layers - 1
    if len(order) <= slots:
        return [[path] for path in order]
    return [[path] for path in order[: slots - 1]] + [sorted(order[slots - 1 :])]


STREAM_SCRIPT = """#!/usr/bin/python3
# Docker image stream of the rpbuild test stand-in for nixpkgs dockerTools.streamLayeredImage.
# Pipe its output into `docker load`: it writes an uncompressed docker-archive
# (manifest.json, <config>.json, <layer>/layer.tar, repositories) to stdout.
# Needs the host's /usr/bin/python3 and the store paths named below.
import importlib.util
import json
import sys

sys.dont_write_bytecode = True
WRITER = @WRITER@
PLAN = json.loads(@PLAN@)


def _main():
    spec = importlib.util.spec_from_file_location("rpbuild_standin_image_writer", WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stream_main(PLAN, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_main())
"""


def build_stream_script() -> None:
    out = _env("out")
    top = os.environ.get("NIX_BUILD_TOP") or os.getcwd()
    customisation = _env("customisation")
    graph = read_references_graph(os.path.join(top, "closure"))
    if customisation not in graph:
        raise BuildError("the closure file does not contain the customisation layer")
    layers = plan_layers(graph, customisation, int(_env("maxLayers")))
    with open(os.path.join(customisation, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    plan = {
        "name": _env("imageName"),
        "tag": _env("imageTag"),
        "created": _env("created"),
        "architecture": _env("architecture"),
        "os": "linux",
        "config": config,
        "storeLayers": layers,
        "customisationLayer": os.path.join(customisation, "layer.tar"),
    }
    text = STREAM_SCRIPT.replace("@WRITER@", repr(_env("writer"))).replace(
        "@PLAN@", repr(json.dumps(plan, sort_keys=True, indent=1))
    )
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(out, 0o555)


def build_gzip_stream() -> None:
    out = _env("out")
    stream = _env("stream")
    with (
        open(out, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
    ):
        proc = subprocess.Popen([stream], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        shutil.copyfileobj(proc.stdout, gz, CHUNK)
        status = proc.wait()
    if status != 0:
        raise BuildError(f"{stream} failed with exit status {status}")


# --------------------------------------------------------------------------- streaming


def _created(value: str) -> str:
    if value == "now":
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _add_layer(
    outer: tarfile.TarFile, layer: IO[bytes], digest: str, size: int, done: set[str]
) -> str:
    name = f"{digest}/layer.tar"
    if digest not in done:
        add_directory(outer, digest)
        info = _tarinfo(name)
        info.type = tarfile.REGTYPE
        info.mode = 0o644
        info.size = size
        outer.addfile(info, layer)
        done.add(digest)
    return name


class _Discard:
    """A write-only sink: the first pass over a layer only hashes and counts it."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def _stream_layer(
    outer: tarfile.TarFile, fill: Callable[[tarfile.TarFile], None], done: set[str]
) -> tuple[str, str]:
    """Add a layer made by fill() to the stream without a copy on disk: (digest, name).

    As nixpkgs' stream_layered_image.py does (pkgs/build-support/docker/: a first pass
    into a stream that only hashes and counts, then the layer written into the image
    through a pipe from a producer thread), because a tar member's header needs its size
    and the config needs its digest before the member's bytes.
    """
    digest, size = write_tar(cast(IO[bytes], _Discard()), fill)
    if digest in done:
        return digest, f"{digest}/layer.tar"
    read_fd, write_fd = os.pipe()
    again: list[tuple[str, int]] = []

    def produce() -> None:
        with open(write_fd, "wb") as pipe:
            again.append(write_tar(pipe, fill))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with open(read_fd, "rb") as pipe:
        name = _add_layer(outer, pipe, digest, size, done)
    producer.join()
    if again != [(digest, size)]:
        raise BuildError(f"layer {digest} changed between the two passes over it")
    return digest, name


def _short(path: str) -> str:
    return os.path.basename(path)[33:]


def stream(plan: dict[str, Any], out: BinaryIO) -> None:
    created = _created(plan["created"])
    diff_ids: list[str] = []
    layer_names: list[str] = []
    history: list[dict[str, str]] = []
    done: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as outer:
        for paths in plan["storeLayers"]:
            digest, name = _stream_layer(outer, store_layer(paths), done)
            layer_names.append(name)
            diff_ids.append("sha256:" + digest)
            history.append(
                {
                    "created": created,
                    "comment": "store paths: " + ", ".join(_short(p) for p in paths),
                }
            )

        custom = plan["customisationLayer"]
        sha = hashlib.sha256()
        with open(custom, "rb") as layer:
            for chunk in iter(lambda: layer.read(CHUNK), b""):
                sha.update(chunk)
            size = layer.tell()
            layer.seek(0)
            layer_names.append(_add_layer(outer, layer, sha.hexdigest(), size, done))
        diff_ids.append("sha256:" + sha.hexdigest())
        history.append(
            {"created": created, "comment": "customisation layer: contents and extraCommands"}
        )

        config = {
            "architecture": plan["architecture"],
            "os": plan["os"],
            "created": created,
            "config": plan["config"],
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        add_bytes(outer, config_name, config_bytes)
        repo_tag = f"{plan['name']}:{plan['tag']}"
        manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
        add_bytes(outer, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
        top_layer = layer_names[-1].split("/")[0]
        repositories = {plan["name"]: {plan["tag"]: top_layer}}
        add_bytes(outer, "repositories", json.dumps(repositories, separators=(",", ":")).encode())
    out.flush()


def stream_main(plan: dict[str, Any], argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(
            f"usage: {sys.argv[0]} | docker load\n"
            f"Writes the image {plan['name']}:{plan['tag']} as a docker-archive to stdout."
        )
        return 0
    if argv:
        print(f"{sys.argv[0]}: no arguments expected (try --help)", file=sys.stderr)
        return 2
    if sys.stdout.isatty():
        print(
            f"{sys.argv[0]}: refusing to write an image archive to a terminal; pipe it into docker load",
            file=sys.stderr,
        )
        return 2
    try:
        stream(plan, sys.stdout.buffer)
    except BrokenPipeError:
        return 1
    return 0


# --------------------------------------------------------------------------- main


COMMANDS = {
    "customisation-layer": build_customisation_layer,
    "stream-script": build_stream_script,
    "gzip-stream": build_gzip_stream,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: {argv[0]} {{{'|'.join(COMMANDS)}}}  (a nix builder)", file=sys.stderr)
        return 2
    try:
        COMMANDS[argv[1]]()
    except BuildError as error:
        print(f"stand-in dockerTools: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
