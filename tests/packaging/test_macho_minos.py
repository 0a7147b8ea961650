"""build/macho_minos.py on Mach-O files made here: the spec derives LSMinimumSystemVersion from
what the bundle carries (on the runner, the macOS job cross-checks it with vtool)."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("macho_minos", ROOT / "build" / "macho_minos.py")
assert _spec is not None
assert _spec.loader is not None
macho = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(macho)


def version(text: str) -> int:
    major, minor, *patch = (int(part) for part in text.split("."))
    return major << 16 | minor << 8 | (patch[0] if patch else 0)


def thin(cpu: int, *commands: bytes) -> bytes:
    body = b"".join(commands)
    return struct.pack("<IIIIIIII", 0xFEEDFACF, cpu, 0, 6, len(commands), len(body), 0, 0) + body


def build_version(minos: str, platform: int = 1) -> bytes:
    return struct.pack("<IIIIII", 0x32, 24, platform, version(minos), version("15.0"), 0)


def version_min(minos: str) -> bytes:
    return struct.pack("<IIII", 0x24, 16, version(minos), version("10.15"))


def fat(*slices: tuple[int, bytes]) -> bytes:
    header = struct.pack(">II", 0xCAFEBABE, len(slices))
    offset, arches, bodies = 8 + 20 * len(slices), b"", b""
    for cpu, body in slices:
        arches += struct.pack(">IIIII", cpu, 0, offset + len(bodies), len(body), 0)
        bodies += body
    return header + arches + bodies


def test_the_highest_floor_of_the_bundle_wins(tmp_path: Path):
    files = {
        "python": thin(macho.CPU_TYPE_ARM64, build_version("11.0")),
        "pillow.so": thin(macho.CPU_TYPE_ARM64, build_version("12.3")),
        "old.dylib": thin(macho.CPU_TYPE_ARM64, version_min("10.13")),
        "ios.dylib": thin(macho.CPU_TYPE_ARM64, build_version("17.0", platform=2)),
        "icon.png": b"\x89PNG not a Mach-O file",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert macho.minimum_macos(sorted(tmp_path.iterdir()), macho.CPU_TYPE_ARM64) == "12.3"


def test_a_universal_file_counts_only_the_apps_slice(tmp_path: Path):
    universal = fat(
        (macho.CPU_TYPE_X86_64, thin(macho.CPU_TYPE_X86_64, build_version("13.0"))),
        (macho.CPU_TYPE_ARM64, thin(macho.CPU_TYPE_ARM64, build_version("11.0.1"))),
    )
    (tmp_path / "lib.so").write_bytes(universal)
    assert macho.minimum_macos([tmp_path / "lib.so"], macho.CPU_TYPE_ARM64) == "11.0.1"
    assert macho.minimum_macos([tmp_path / "lib.so"], macho.CPU_TYPE_X86_64) == "13.0"


def test_nothing_to_read_is_none(tmp_path: Path):
    (tmp_path / "data").write_bytes(b"text")
    assert macho.minimum_macos([tmp_path / "data"], macho.CPU_TYPE_ARM64) is None
