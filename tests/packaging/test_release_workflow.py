"""The release workflow cannot run here; read it: triggers, one build job per OS that self-tests
what it built before uploading it, and a release job that publishes all three."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"

BUILD_JOBS = {
    "linux": ("ubuntu-", "bash build/linux.sh", "dist/telex-start --self-test"),
    "windows": ("windows-", "./build/windows.ps1", "telex-start.exe -Wait"),
    "macos": ("macos-", "bash build/macos.sh", 'MacOS/telex-start" --self-test'),
}


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def step_index(steps: list[dict[str, Any]], needle: str) -> int:
    for index, step in enumerate(steps):
        if needle in str(step.get("run", "")) or needle in str(step.get("uses", "")):
            return index
    raise AssertionError(f"no step with {needle!r}")


def test_runs_on_version_tags(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert triggers["push"]["tags"] == ["v*"]
    assert "branches" not in triggers["push"]
    assert workflow["permissions"] == {"contents": "read"}  # write only where releases are made


@pytest.mark.parametrize("job_name", sorted(BUILD_JOBS))
def test_each_os_builds_then_self_tests_then_uploads(workflow, job_name):
    runner, build, self_test = BUILD_JOBS[job_name]
    job = workflow["jobs"][job_name]
    steps = job["steps"]
    assert job["runs-on"].startswith(runner)
    assert step_index(steps, "actions/checkout@") == 0
    built = step_index(steps, build)
    tested = step_index(steps, self_test)
    uploaded = step_index(steps, "actions/upload-artifact@")
    assert built < tested < uploaded
    assert "--self-test" in steps[tested]["run"]
    assert steps[uploaded]["with"]["if-no-files-found"] == "error"
    setup_python = steps[step_index(steps, "actions/setup-python@")]
    assert setup_python["with"]["python-version"] == "${{ env.PYTHON_VERSION }}"
    checked = step_index(steps, "GITHUB_REF_NAME")
    assert steps[checked]["if"] == "startsWith(github.ref, 'refs/tags/v')"


def test_the_windows_installer_is_installed_tested_and_uninstalled(workflow):
    steps = workflow["jobs"]["windows"]["steps"]
    script = steps[step_index(steps, "unins000.exe")]["run"]
    assert script.index("/VERYSILENT") < script.index("--self-test") < script.index("unins000")


def test_macos_signs_and_notarises_only_with_secrets(workflow):
    job = workflow["jobs"]["macos"]
    for name in (
        "MACOS_CERTIFICATE_P12",
        "MACOS_NOTARY_APPLE_ID",
        "MACOS_NOTARY_TEAM_ID",
        "MACOS_NOTARY_PASSWORD",
    ):
        assert job["env"][name] == f"${{{{ secrets.{name} }}}}"
    keychain = job["steps"][step_index(job["steps"], "security import")]
    assert keychain["if"] == "env.MACOS_CERTIFICATE_P12 != ''"
    assert "MACOS_CODESIGN_IDENTITY" in keychain["run"]


def test_the_release_job_publishes_all_three(workflow):
    release = workflow["jobs"]["release"]
    assert set(release["needs"]) == set(BUILD_JOBS)
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert release["permissions"] == {"contents": "write"}
    steps = release["steps"]
    download = steps[step_index(steps, "actions/download-artifact@")]
    assert download["with"]["merge-multiple"] is True
    publish = steps[step_index(steps, "softprops/action-gh-release@")]
    assert publish["with"]["files"] == "assets/*"
    assert publish["with"]["fail_on_unmatched_files"] is True


def test_every_action_is_pinned_to_a_version(workflow):
    uses = [
        step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step
    ]
    assert uses
    assert all(re.fullmatch(r"[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", use) for use in uses), uses


def test_linux_job_checks_installs_and_uploads_the_packages(workflow):
    """The .deb passes lintian and is installed, self-tested and purged on the runner; the .deb
    and .rpm go up beside the binary, so the release job's SHA256SUMS covers them too."""
    steps = workflow["jobs"]["linux"]["steps"]
    built = step_index(steps, "bash build/linux.sh")
    linted = step_index(steps, "lintian --fail-on error,warning dist/telex-start_*.deb")
    installed = step_index(steps, "./dist/telex-start_*.deb")
    named = step_index(steps, "out/$asset")
    uploaded = step_index(steps, "actions/upload-artifact@")
    assert built < linted < installed < named < uploaded
    assert "rpm -qip dist/telex-start-*.rpm" in steps[linted]["run"]
    script = steps[installed]["run"]
    assert script.index("apt-get install") < script.index("--self-test") < script.index("--purge")
    assert "/usr/bin/telex-start --self-test" in script
    assert "test ! -e /usr/lib/telex-start" in script
    assert "cp dist/telex-start_*.deb dist/telex-start-*.rpm out/" in steps[named]["run"]
    assert steps[uploaded]["with"]["path"] == "out/*"
    packages = steps[step_index(steps, "apt-get install -y -qq --no-install-recommends xvfb")]
    assert {"dpkg-dev", "rpm", "chrpath", "lintian"} <= set(packages["run"].split())
    checksums = workflow["jobs"]["release"]["steps"][
        step_index(workflow["jobs"]["release"]["steps"], "SHA256SUMS")
    ]
    assert "sha256sum -- *" in checksums["run"]  # every downloaded asset, the packages included
