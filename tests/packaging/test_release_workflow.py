"""The release workflow cannot run here; read it: triggers, one build job per OS that self-tests
what it built before uploading it, and a release job that publishes all three."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
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


SMOKE_SCRIPTS = {
    "windows": ROOT / "build" / "smoke-windows.ps1",
    "macos": ROOT / "build" / "smoke-macos.sh",
}

#: What each smoke script must still check (the issue's list), as the words that do it.
SMOKE_CHECKS = {
    "windows": (
        "Start-Sleep 10",  # the desktop mode is still up after 10 s ...
        "Tray icon backend: pystray._win32",  # ... with its tray
        "Another launch asked for: activate",  # a second launch hands over, exit 0
        '"--test-notification"',
        "Test notification shown through desktop",  # pywinrt 4.x settled here
        "AppUserModelId",
        "devstack",  # the local stack, from the checkout with the build venv
        '"--headless"',
        '"--password-stdin"',
        '"--api-url", $api, "--ws-url", $ws',
        "Notification shown",
        "0x0011",  # WM_QUERYENDSESSION answered 1 ...
        "0x0016",  # ... and WM_ENDSESSION ends it: the clean exit Windows asks for
        "Command: exit",
        "win10toast_click",
    ),
    "macos": (
        "sleep 10",
        "Tray icon backend: pystray._darwin",
        "Another launch asked for: activate",
        "open -a",  # reopen from Finder/Spotlight reaches ::tk::mac::ReopenApplication
        "macOS asked to reopen",
        "--test-notification",
        "Notification permission: ",
        "devstack",
        "--headless",
        "--password-stdin",
        '--api-url "$api" --ws-url "$ws"',
        "Notification shown",
        "to quit",  # Quit, as at logout: ::tk::mac::Quit
        "Command: exit",
        "pyobjus",
    ),
}


def runs(step: dict[str, Any]) -> str:
    return str(step.get("run", ""))


@pytest.mark.parametrize("job_name", sorted(SMOKE_SCRIPTS))
def test_the_frozen_and_the_installed_app_are_smoke_tested(workflow, job_name):
    steps = workflow["jobs"][job_name]["steps"]
    script = f"build/{SMOKE_SCRIPTS[job_name].name}"
    smoke = [i for i, step in enumerate(steps) if script in runs(step)]
    assert len(smoke) == 2, "the frozen app and the installed one"
    built = step_index(steps, BUILD_JOBS[job_name][1])
    uploaded = step_index(steps, "actions/upload-artifact@")
    assert built < smoke[0] < smoke[1] < uploaded
    frozen, installed = (runs(steps[i]) for i in smoke)
    if job_name == "windows":
        assert "dist\\telex-start\\telex-start.exe" in frozen
        assert (
            installed.index("/VERYSILENT") < installed.index(script) < installed.index("unins000")
        )
        assert '-Exe "$dir\\telex-start.exe"' in installed
    else:
        assert '"dist/Telex Start.app"' in frozen
        assert (
            installed.index("hdiutil attach") < installed.index("ditto") < installed.index(script)
        )


@pytest.mark.parametrize("job_name", sorted(SMOKE_SCRIPTS))
def test_the_smoke_scripts_check_what_the_issue_asks(job_name):
    text = SMOKE_SCRIPTS[job_name].read_text()
    missing = [check for check in SMOKE_CHECKS[job_name] if check not in text]
    assert missing == []


@pytest.mark.parametrize("job_name", sorted(SMOKE_SCRIPTS))
def test_the_logs_are_kept_when_a_step_fails(workflow, job_name):
    steps = workflow["jobs"][job_name]["steps"]
    kept = [
        step
        for step in steps
        if "actions/upload-artifact@" in str(step.get("uses", "")) and step.get("if") == "failure()"
    ]
    assert len(kept) == 1
    assert kept[0]["with"]["path"] == "${{ runner.temp }}/smoke-*/"
    smoke_dirs = re.findall(r"smoke-(?:frozen|installed)", json.dumps(steps))
    assert set(smoke_dirs) == {"smoke-frozen", "smoke-installed"}


def test_an_unsigned_macos_image_is_published_as_a_pre_release(workflow):
    macos = workflow["jobs"]["macos"]
    assert macos["outputs"]["unsigned"] == "${{ steps.image.outputs.unsigned }}"
    image = next(step for step in macos["steps"] if step.get("id") == "image")
    assert "*-unsigned.dmg)" in image["run"]
    uploaded = macos["steps"][step_index(macos["steps"], "actions/upload-artifact@")]
    assert uploaded["with"]["path"] == "dist/telex-start-*-macos-*.dmg"
    release = workflow["jobs"]["release"]
    publish = release["steps"][step_index(release["steps"], "softprops/action-gh-release@")]
    assert publish["with"]["prerelease"] == "${{ needs.macos.outputs.unsigned == 'true' }}"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_macos_smoke_script_passes_shellcheck():
    proc = subprocess.run(
        ["shellcheck", str(SMOKE_SCRIPTS["macos"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


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
