"""Audit the pinned dependencies with pip-audit; fail on a known vulnerability that has a fix.

    python -m tests.security.dependency_audit [--requirement FILE ...] [--pins-only]
        [-- extra pip-audit arguments, e.g. --vulnerability-service osv]

Two passes over ``requirements.txt`` and ``build/requirements-build.txt`` (by default):

1. resolved: pip-audit resolves the files as pip would install them here, so the dependencies
   of dependencies (aiohttp's yarl, multidict, ...) are audited too;
2. pins: every ``name==version`` line of the files and of the files they include, with the
   environment markers dropped, so the Windows and macOS pins are audited on Linux as well.

Exit 1 when a vulnerability with a fixed version is known for a pinned or resolved version.
A vulnerability without a fix is reported and does not fail (nothing to upgrade to).

When the vulnerability service cannot be asked (no network, or a mirror that does not serve
PyPI's per-version JSON), nothing was audited: a loud WARNING says so and the exit is 0,
because a run that cannot reach the service says nothing about the code under test and must
not block it; it is never a silent pass. ``AUDIT_STRICT=1`` makes it exit 1 instead (for a
release build on a machine with full network access).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILES = (ROOT / "requirements.txt", ROOT / "build" / "requirements-build.txt")
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")
INCLUDE = re.compile(r"^\s*(?:-r|--requirement)\s+(\S+)")


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    ids: tuple[str, ...]
    fixed_in: tuple[str, ...]

    def __str__(self) -> str:
        fix = f"fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "no fix yet"
        return f"{self.package}=={self.version}: {', '.join(self.ids)} ({fix})"


@dataclass
class Audit:
    audited: set[tuple[str, str]] = field(default_factory=set)
    findings: set[Finding] = field(default_factory=set)
    not_audited: dict[str, str] = field(default_factory=dict)  # package or pass -> why

    def add_report(self, report: dict[str, Any]) -> None:
        for dep in report.get("dependencies", []):
            name = str(dep.get("name", "?"))
            if "skip_reason" in dep:
                self.not_audited[name] = str(dep["skip_reason"])
                continue
            version = str(dep.get("version", "?"))
            self.audited.add((name, version))
            for vuln in dep.get("vulns", []):
                ids = (str(vuln.get("id", "?")), *map(str, vuln.get("aliases", [])))
                fixed = tuple(map(str, vuln.get("fix_versions", [])))
                self.findings.add(Finding(name, version, ids, fixed))

    @property
    def fixable(self) -> list[Finding]:
        return sorted((f for f in self.findings if f.fixed_in), key=str)


def pinned_lines(path: Path, seen: set[Path] | None = None) -> Iterator[str]:
    """``name==version`` of every pin in ``path`` and the files it includes (``-r``)."""
    seen = set() if seen is None else seen
    if path in seen:
        return
    seen.add(path)
    for line in path.read_text(encoding="utf-8").splitlines():
        if include := INCLUDE.match(line):
            yield from pinned_lines((path.parent / include.group(1)).resolve(), seen)
        elif pin := PIN.match(line):
            yield f"{pin.group(1)}=={pin.group(2)}"


def without_repeated_names(pins: Sequence[str]) -> list[list[str]]:
    """``pins`` in as few groups as hold each package once: one OS may pin another version
    than the others (setuptools on Windows), and pip-audit refuses a file that names a
    package twice."""
    groups: list[dict[str, str]] = []
    for pin in pins:
        name = re.sub(r"[-_.]+", "-", pin.split("==", 1)[0]).lower()
        group = next((g for g in groups if name not in g), None)
        if group is None:
            group = {}
            groups.append(group)
        group[name] = pin
    return [sorted(group.values()) for group in groups]


def run_pip_audit(args: Sequence[str], audit: Audit, what: str) -> None:
    with tempfile.TemporaryDirectory(prefix="pip-audit-") as tmp:
        out = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--format",
            "json",
            "--output",
            str(out),
            "--progress-spinner",
            "off",
            *args,
        ]
        ran = subprocess.run(command, capture_output=True, text=True, check=False)
        if not out.exists():  # pip-audit did not get to report: the service or pip failed
            last = (ran.stderr.strip().splitlines() or [f"exit code {ran.returncode}"])[-1]
            audit.not_audited[f"({what})"] = last
            return
        audit.add_report(json.loads(out.read_text(encoding="utf-8")))


def say(text: str, stream: TextIO = sys.stdout) -> None:
    stream.write(text + "\n")
    stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requirement", "-r", action="append", type=Path, dest="files")
    parser.add_argument("--pins-only", action="store_true", help="skip the resolved pass")
    parser.add_argument("extra", nargs="*", help="passed on to pip-audit (after --)")
    args = parser.parse_args(argv)
    files: list[Path] = [f.resolve() for f in (args.files or DEFAULT_FILES)]
    audit = Audit()

    if not args.pins_only:
        requirements = [arg for f in files for arg in ("--requirement", str(f))]
        run_pip_audit([*requirements, *args.extra], audit, "resolved")
    seen: set[Path] = set()
    pins = sorted({pin for f in files for pin in pinned_lines(f, seen)})
    for group in without_repeated_names(pins):
        with tempfile.TemporaryDirectory(prefix="pins-") as tmp:
            pin_file = Path(tmp) / "pins.txt"
            pin_file.write_text("\n".join(group) + "\n", encoding="utf-8")
            pin_args = ["--requirement", str(pin_file), "--no-deps", "--disable-pip"]
            run_pip_audit([*pin_args, *args.extra], audit, "pins")

    names = ", ".join(str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f) for f in files)
    say(f"pip-audit of {names}: {len(audit.audited)} package versions audited")
    for finding in sorted(audit.findings, key=str):
        say(f"  VULNERABLE {finding}")
    if audit.not_audited:
        strict = os.environ.get("AUDIT_STRICT", "") not in ("", "0")
        reasons = sorted(set(audit.not_audited.values()))
        banner = "!" * 78
        say(
            f"{banner}\nWARNING: {len(audit.not_audited)} package(s) or pass(es) could NOT be "
            "audited: the vulnerability service was not reachable or does not know them.\n"
            + "\n".join(f"  - {reason}" for reason in reasons[:5])
            + ("\n  ..." if len(reasons) > 5 else "")
            + "\nThis is not a pass. "
            + ("AUDIT_STRICT is set: failing." if strict else "(AUDIT_STRICT=1 fails instead.)")
            + f"\n{banner}",
            sys.stderr,
        )
        if strict:
            return 1
    if audit.fixable:
        say(f"FAILED: {len(audit.fixable)} known vulnerability(ies) with a fix: upgrade the pins.")
        return 1
    if not audit.not_audited:
        say("No known vulnerability with a fix.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
