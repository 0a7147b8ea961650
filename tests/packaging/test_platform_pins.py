"""The pins check of tests/run.sh (tests/packaging/platform_pins.py) asks pip about the files
as each release build sees them: pip itself would apply this machine's markers."""

from __future__ import annotations

from tests.packaging.platform_pins import DEFAULT_FILES, TARGETS, as_seen_by, requirement_lines

LINES = [line for path in DEFAULT_FILES for line in requirement_lines(path)]


def names(target: str) -> set[str]:
    (chosen,) = [t for t in TARGETS if t.name == target]
    return {line.split("=")[0].lower() for line in as_seen_by(chosen, LINES)}


def test_the_windows_build_gets_its_pins_and_none_of_the_others() -> None:
    windows = names("windows")
    assert {"winrt-runtime", "pefile", "pywin32-ctypes", "pyinstaller", "aiohttp"} <= windows
    assert not windows & {"dbus-fast", "python-xlib", "pyobjus", "pyobjc-core", "macholib"}


def test_the_macos_build_gets_its_pins_and_none_of_the_others() -> None:
    macos = names("macos")
    assert {"pyobjus", "pyobjc-core", "rubicon-objc", "macholib", "pyinstaller"} <= macos
    assert not macos & {"dbus-fast", "python-xlib", "winrt-runtime", "pefile"}


def test_included_files_are_followed_and_markers_are_gone() -> None:
    assert "pyinstaller==6.22.3" in LINES  # build/requirements-build.txt
    assert "aiohttp==3.14.5" in LINES  # its -r ../requirements.txt
    assert all(";" not in line for target in TARGETS for line in as_seen_by(target, LINES))
