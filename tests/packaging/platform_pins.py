"""Check that the pins resolve to binary wheels for the Windows and macOS release builds.

    python -m tests.packaging.platform_pins [--requirement FILE ...] [--target NAME ...]

For each target (the release jobs' CPython 3.11 on ``win_amd64``, and ``macosx_11_0_arm64``:
the spec's ``LSMinimumSystemVersion`` on the Apple Silicon runner, where a universal2 wheel
counts too), ``requirements.txt`` and ``build/requirements-build.txt`` are resolved with
``pip install --dry-run --only-binary :all: --platform ...``: a pin without a wheel for that
platform, or a dependency that cannot be met, fails here instead of in the release build.

pip evaluates environment markers against the machine it runs on, not the ``--platform`` it
is given, so this first writes each file as that target sees it (the Windows pins kept, the
Linux ones dropped), with the markers evaluated for the target. Dependencies of the pins are
still resolved with this machine's markers: a Windows-only dependency of a pin that is not
pinned itself is not checked, and a Linux-only one (desktop-notifier's dbus-fast) is resolved
needlessly; the release build's own install is the last word.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILES = (ROOT / "requirements.txt", ROOT / "build" / "requirements-build.txt")
INCLUDE = re.compile(r"^\s*(?:-r|--requirement)\s+(\S+)")
PYTHON = "3.11"


@dataclass(frozen=True)
class Target:
    name: str
    platform: str  # the wheel platform tag pip is asked for
    markers: Mapping[str, str]  # the PEP 508 environment of that build


TARGETS = (
    Target(
        "windows",
        "win_amd64",
        {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows"}
        | {"platform_machine": "AMD64"},
    ),
    Target(
        "macos",
        "macosx_11_0_arm64",
        {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin"}
        | {"platform_machine": "arm64"},
    ),
)


def requirement_lines(path: Path) -> Iterator[str]:
    """The requirement lines of ``path`` and of the files it includes, without comments."""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        include = INCLUDE.match(line)
        if include:
            yield from requirement_lines((path.parent / include.group(1)).resolve())
        elif line:
            yield line


def as_seen_by(target: Target, lines: Sequence[str]) -> list[str]:
    """The requirements ``target`` installs, markers evaluated for it and dropped."""
    environment = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.9"}
    environment |= {"implementation_name": "cpython", "platform_python_implementation": "CPython"}
    environment |= target.markers
    kept = []
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            kept.append(str(requirement))
    return kept


def resolves(target: Target, files: Sequence[Path]) -> bool:
    lines = [line for path in files for line in requirement_lines(path)]
    with tempfile.TemporaryDirectory(prefix=f"pins-{target.name}-") as work:
        requirements = Path(work) / "requirements.txt"
        requirements.write_text("\n".join(as_seen_by(target, lines)) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--target", str(Path(work) / "site"), "--root-user-action", "ignore"]
        command += ["--platform", target.platform, "--python-version", PYTHON]
        command += ["--implementation", "cp", "--only-binary", ":all:"]
        command += ["--disable-pip-version-check", "-r", str(requirements)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    would = [line for line in done.stdout.splitlines() if line.startswith("Would install")]
    if done.returncode != 0 or not would:
        sys.stdout.write(done.stdout + done.stderr)
        print(f"{target.name} ({target.platform}, CPython {PYTHON}): the pins do NOT resolve")
        return False
    count = len(would[0].split()) - 2
    print(f"{target.name} ({target.platform}, CPython {PYTHON}): {count} wheels resolve")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requirement", "-r", type=Path, action="append", dest="files")
    parser.add_argument("--target", choices=[t.name for t in TARGETS], action="append")
    args = parser.parse_args(argv)
    files = args.files or list(DEFAULT_FILES)
    chosen = [t for t in TARGETS if args.target is None or t.name in args.target]
    results = [resolves(target, files) for target in chosen]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
