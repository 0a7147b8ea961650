"""The dependency audit of tests/run.sh (tests/security/dependency_audit.py) fails on a known
vulnerability with a fix, and says loudly when it could not audit at all.

The real vulnerability services are not reachable from the test machines (only the package
index is), so pip-audit is pointed at a loopback server that answers OSV's ``/v1/query`` as
api.osv.dev does, with a real advisory: GHSA-5h86-8mv2-jq9f (CVE-2024-23334), directory
traversal in aiohttp's static routes, fixed in 3.9.2.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from packaging.version import Version

from tests.security.dependency_audit import DEFAULT_FILES, pinned_lines
from tests.support.security import Serve

ROOT = Path(__file__).resolve().parents[2]

AIOHTTP_TRAVERSAL = {
    "schema_version": "1.6.0",
    "id": "GHSA-5h86-8mv2-jq9f",
    "aliases": ["CVE-2024-23334"],
    "summary": "aiohttp is vulnerable to directory traversal",
    "published": "2024-01-29T22:30:00Z",
    "affected": [
        {
            "package": {"name": "aiohttp", "ecosystem": "PyPI"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "1.0.5"}, {"fixed": "3.9.2"}]}
            ],
        }
    ],
}
NO_FIX_YET = {
    "id": "PYSEC-0000-test",
    "summary": "an advisory without a fixed version",
    "affected": [{"package": {"name": "six", "ecosystem": "PyPI"}, "ranges": []}],
}


@dataclass
class FakeOsv:
    """Answers ``POST /v1/query`` like OSV: the advisories of that package version, or {}."""

    url: str = ""
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def query(self, request: web.Request) -> web.Response:
        body = await request.json()
        name, version = body["package"]["name"], body["version"]
        self.asked.append((name, version))
        if name == "aiohttp" and Version(version) < Version("3.9.2"):
            return web.json_response({"vulns": [AIOHTTP_TRAVERSAL]})
        if name == "six" and version == "0.0.1":
            return web.json_response({"vulns": [NO_FIX_YET]})
        return web.json_response({})


@pytest.fixture
async def osv(serve: Serve) -> FakeOsv:
    fake = FakeOsv()
    fake.url = await serve(fake.query) + "/v1/query"
    return fake


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


async def audit(osv_url: str, *files: Path, strict: bool = False) -> Run:
    args = [arg for f in files for arg in ("--requirement", str(f))]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.security.dependency_audit",
        "--pins-only",
        *args,
        "--",
        "--vulnerability-service",
        "osv",
        "--osv-url",
        osv_url,
        "--timeout",
        "5",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AUDIT_STRICT": "1" if strict else "0"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(["# pinned", *lines]) + "\n")
    return path


async def test_a_pin_with_a_known_fixed_vulnerability_fails(tmp_path: Path, osv: FakeOsv):
    run = await audit(osv.url, requirements(tmp_path, "aiohttp==3.9.0", "six==1.17.0"))
    assert run.code == 1, run
    [line] = [line for line in run.out.splitlines() if line.startswith("  VULNERABLE")]
    assert line.startswith("  VULNERABLE aiohttp==3.9.0: ")
    assert "GHSA-5h86-8mv2-jq9f" in line
    assert "CVE-2024-23334" in line
    assert line.endswith("(fixed in 3.9.2)")
    assert "FAILED: 1 known vulnerability(ies) with a fix" in run.out
    assert sorted(osv.asked) == [("aiohttp", "3.9.0"), ("six", "1.17.0")]


async def test_the_fixed_version_passes(tmp_path: Path, osv: FakeOsv):
    run = await audit(osv.url, requirements(tmp_path, "aiohttp==3.9.2"))
    assert run.code == 0, run
    assert "1 package versions audited" in run.out
    assert "No known vulnerability with a fix." in run.out


async def test_a_vulnerability_without_a_fix_is_reported_and_does_not_fail(
    tmp_path: Path, osv: FakeOsv
):
    run = await audit(osv.url, requirements(tmp_path, "six==0.0.1"))
    assert run.code == 0, run
    assert "VULNERABLE six==0.0.1: PYSEC-0000-test (no fix yet)" in run.out


async def test_pins_for_other_systems_and_included_files_are_audited(tmp_path: Path, osv: FakeOsv):
    base = requirements(tmp_path, 'aiohttp==3.9.0; sys_platform == "win32"')
    top = tmp_path / "build.txt"
    top.write_text(f"-r {base.name}\npyinstaller==6.22.3\n")
    run = await audit(osv.url, top)
    assert run.code == 1, run
    assert ("aiohttp", "3.9.0") in osv.asked, "a Windows-only pin is audited on Linux too"


async def test_the_project_pins_are_clean_against_the_known_advisory(osv: FakeOsv):
    run = await audit(osv.url, *DEFAULT_FILES)
    assert run.code == 0, run
    pins = set(pinned_lines(DEFAULT_FILES[0])) | set(pinned_lines(DEFAULT_FILES[1]))
    assert f"{len(pins)} package versions audited" in run.out
    assert any(name.startswith("winrt") for name, _ in osv.asked)
    assert any(name == "pyobjus" for name, _ in osv.asked)


async def test_an_unreachable_service_is_a_loud_warning_not_a_pass(tmp_path: Path):
    closed = "http://127.0.0.1:9/v1/query"  # discard port: nothing listens there
    reqs = requirements(tmp_path, "aiohttp==3.9.0")
    run = await audit(closed, reqs)
    assert run.code == 0, run
    assert "WARNING" in run.err
    assert "could NOT be audited" in run.err
    assert "This is not a pass." in run.err
    assert "No known vulnerability" not in run.out
    strict = await audit(closed, reqs, strict=True)
    assert strict.code == 1, strict
    assert "AUDIT_STRICT is set: failing." in strict.err


@pytest.mark.parametrize(
    "name", ["requirements.txt", "requirements-dev.txt", "build/requirements-build.txt"]
)
def test_every_requirement_is_pinned_to_one_version(name: str) -> None:
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(("-r ", "--requirement ")):
            continue
        requirement = line.split(";", 1)[0]
        # name==version, an epoch ("4!10.0") allowed; no range, wildcard or bare name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[^\s=<>~*]+\s*", requirement), raw


def test_pinned_lines_follow_includes_once_and_drop_markers(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text('-r b.txt\nX==1 ; sys_platform == "darwin"\n# c==3\ny>=2\n')
    (tmp_path / "b.txt").write_text("-r a.txt\nZ_z.q==4!1.0\n")
    assert list(pinned_lines(tmp_path / "a.txt")) == ["Z_z.q==4!1.0", "X==1"]
    assert json.dumps(sorted(pinned_lines(tmp_path / "b.txt"))) == '["X==1", "Z_z.q==4!1.0"]'
