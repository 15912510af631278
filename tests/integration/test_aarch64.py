"""An aarch64-linux image for real: built from the stand-ins' arm64 packages (Debian's
arm64 binaries, from the sysroot .ci/standin-sysroot makes), loaded into Docker and run
on this x86_64 machine under qemu-user emulation (binfmt_misc, registered by .ci/setup).

The entrypoint runs in standalone mode in an arm64 container: rp makes the keys (the
stand-in rp under arm64 bash, wg and rosenpass arm64 too) and publishes the public ones.
"""

from __future__ import annotations

import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import STANDIN_OVERRIDES, RunCli

pytestmark = [pytest.mark.nix, pytest.mark.docker]

EM_AARCH64 = 183  # ELF e_machine of AArch64
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(["docker", *args], capture_output=True, check=False, timeout=300)
    if check:
        assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
    return proc


@pytest.fixture
def arm_image(rpbuild: RunCli, project: Path) -> Iterator[str]:
    assert BINFMT.exists(), "qemu-aarch64 is not registered with binfmt_misc: run .ci/setup"
    tag = f"rpbuild-test/{uuid.uuid4().hex[:10]}:arm64"
    built = rpbuild(
        "image", "--profile", "minimal", "--system", "aarch64-linux", "--tag", tag,
        *STANDIN_OVERRIDES, cwd=project,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    yield tag
    docker("image", "rm", "--force", tag, check=False)


def run(tag: str, *args: str, mounts: tuple[str, ...] = (), env: tuple[str, ...] = ()) -> bytes:
    flags = [arg for mount in mounts for arg in ("-v", mount)]
    flags += [arg for item in env for arg in ("-e", item)]
    return docker("run", "--rm", "--pull", "never", *flags, tag, *args).stdout


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", data[:4]
    machine: int = struct.unpack_from("<H", data, 18)[0]
    return machine


def test_an_arm64_image_makes_and_publishes_keys_under_emulation(
    arm_image: str, tmp_path: Path
) -> None:
    config = docker("image", "inspect", "--format", "{{.Architecture}} {{.Os}}", arm_image)
    assert config.stdout.decode().split() == ["arm64", "linux"]

    # The image's programs are arm64 ELF: the entrypoint's shell, and rosenpass.
    shebang = run(arm_image, "cat", "/bin/rpbuild-entrypoint").split(b"\n", 1)[0]
    assert shebang.startswith(b"#!/nix/store/"), shebang
    assert elf_machine(run(arm_image, "cat", shebang[2:].decode())) == EM_AARCH64
    assert elf_machine(run(arm_image, "cat", "/bin/rosenpass")) == EM_AARCH64
    # ... and they run as aarch64: uname reports what qemu emulates.
    assert run(arm_image, "uname", "-m").decode().strip() == "aarch64"

    private, public = tmp_path / "private", tmp_path / "public"
    private.mkdir()
    public.mkdir()
    mounts = (f"{private}:/keys/private", f"{public}:/keys/public")
    run(arm_image, mounts=mounts, env=("MODE=standalone",))
    secret = private / "rosenpass"
    assert sorted(p.name for p in secret.iterdir()) == ["pqpk", "pqsk", "wgsk"]
    assert sorted(p.name for p in public.iterdir()) == ["pqpk", "wgpk"]
    assert (public / "pqpk").read_bytes() == (secret / "pqpk").read_bytes()
    wgpk = (public / "wgpk").read_text().strip()
    assert len(wgpk) == 44 and wgpk.endswith("="), "a WireGuard public key, base64"
    assert wgpk != (secret / "wgsk").read_text().strip()
