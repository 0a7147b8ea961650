"""The oldest macOS a set of Mach-O files runs on: the highest ``minos`` among them.

``telex_start.spec`` writes it into the app's ``LSMinimumSystemVersion``, so the bundle says
what the Python, the wheels' native parts and the bootloader it carries really need instead of
a number typed once (a new Pillow or Python build raising its floor would otherwise go unseen,
and Finder would start an app that cannot load its libraries). Reads ``LC_BUILD_VERSION`` and
the older ``LC_VERSION_MIN_MACOSX``; in a universal file only the slice of ``cpu_type``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

CPU_TYPE_ARM64 = 0x0100000C
CPU_TYPE_X86_64 = 0x01000007
LC_VERSION_MIN_MACOSX = 0x24
LC_BUILD_VERSION = 0x32
PLATFORM_MACOS = 1
_THIN = {b"\xcf\xfa\xed\xfe": 32, b"\xce\xfa\xed\xfe": 28}  # 64- and 32-bit headers, little-endian
_FAT = {b"\xca\xfe\xba\xbe": (">IIIII", 20), b"\xca\xfe\xba\xbf": (">IIQQII", 32)}


def minimum_macos(paths: Iterable[Path | str], cpu_type: int) -> str | None:
    """``"12.0"`` for the highest floor among ``paths`` (non-Mach-O files are ignored), or None."""
    floors = [v for path in paths for v in _floors(Path(path).read_bytes(), cpu_type)]
    if not floors:
        return None
    top = max(floors)
    return f"{top >> 16}.{(top >> 8) & 0xFF}" + (f".{top & 0xFF}" if top & 0xFF else "")


def _floors(data: bytes, cpu_type: int) -> list[int]:
    magic = data[:4]
    if magic in _FAT:
        layout, size = _FAT[magic]
        (count,) = struct.unpack_from(">I", data, 4)
        slices = [struct.unpack_from(layout, data, 8 + i * size) for i in range(count)]
        return [
            floor
            for cpu, _sub, offset, length, *_ in slices
            if cpu == cpu_type
            for floor in _floors(data[offset : offset + length], cpu_type)
        ]
    if magic not in _THIN:
        return []
    (cpu,) = struct.unpack_from("<I", data, 4)
    if cpu != cpu_type:
        return []
    (ncmds,) = struct.unpack_from("<I", data, 16)
    offset, floors = _THIN[magic], []
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, offset)
        if cmd == LC_BUILD_VERSION:
            platform, minos = struct.unpack_from("<II", data, offset + 8)
            if platform == PLATFORM_MACOS:
                floors.append(minos)
        elif cmd == LC_VERSION_MIN_MACOSX:
            floors.append(struct.unpack_from("<I", data, offset + 8)[0])
        offset += cmdsize
    return floors
