"""The build recipes that cannot run here (Windows, macOS) are checked by reading them: the spec's
per-OS settings, the build scripts' directories, the installer script, the entitlements."""

from __future__ import annotations

import ast
import plistlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.system import autostart, single_instance

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "telex_start.spec"
SCRIPTS = [ROOT / "build" / name for name in ("linux.sh", "macos.sh", "windows.ps1")]
ISS = ROOT / "build" / "windows" / "telex-start.iss"


def spec_calls(name: str) -> list[dict[str, ast.expr]]:
    """Keyword arguments of every ``name(...)`` call in the spec."""
    tree = ast.parse(SPEC.read_text(), filename=str(SPEC))
    return [
        {kw.arg: kw.value for kw in node.keywords if kw.arg}
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


def spec_list(name: str) -> list[Any]:
    tree = ast.parse(SPEC.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"no list {name} in the spec")


def test_every_executable_is_windowed_and_unpacked():
    exes = spec_calls("EXE")
    assert len(exes) == 4  # Windows, macOS, Linux one-file and Linux one-dir (the packages')
    for kwargs in exes:
        assert ast.literal_eval(kwargs["console"]) is False
        assert ast.literal_eval(kwargs["upx"]) is False


def test_dev_stack_tests_and_dev_dependencies_are_excluded():
    assert {"devstack", "tests", "pytest", "_pytest", "jwt"} <= set(spec_list("excludes"))


def test_the_macos_bundle_is_a_menu_bar_app_with_the_bundle_id():
    (bundle,) = spec_calls("BUNDLE")
    assert isinstance(bundle["bundle_identifier"], ast.Name)
    assert bundle["bundle_identifier"].id == "APP_ID"
    plist = bundle["info_plist"]
    assert isinstance(plist, ast.Dict)
    entries = {
        ast.literal_eval(key): value
        for key, value in zip(plist.keys, plist.values, strict=True)
        if key is not None
    }
    assert ast.literal_eval(entries["LSUIElement"]) is True
    assert "CFBundleVersion" in entries
    # derived from the bundled binaries (build/macho_minos.py), not typed in
    assert ast.unparse(entries["LSMinimumSystemVersion"]) == "minimum_system"
    icon = bundle["icon"]
    assert isinstance(icon, ast.Call)
    assert "telex-start.icns" in ast.unparse(icon)


def test_the_icons_the_recipes_name_exist():
    for name in ("telex-start.ico", "telex-start.icns", "telex-start.png"):
        assert (ROOT / "icons" / name).stat().st_size > 0


def test_work_and_dist_dirs_keep_out_of_build():
    """PyInstaller's default work dir is ./build: every script must point it elsewhere."""
    for script in SCRIPTS:
        text = script.read_text()
        assert re.search(r"--workpath \(?(\"\$WORK|Join-Path \$Work)", text), script.name
        assert re.search(r"--distpath \(?(\"\$ROOT/dist|Join-Path \$Root \"dist)", text)
        assert re.search(
            r'WORK="\$ROOT/build/\.work"|\$Work = Join-Path \$Root "build\\\.work"', text
        )
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "build/.work/" in ignored
    assert "dist/" in ignored


def test_nothing_deletes_the_build_dir():
    """Only the scripts' own virtualenv, staging dir and outputs may be removed."""
    allowed = re.compile(r'\$(VENV|Venv|STAGING|DMG)\b|"\$RUNNER_TEMP')
    for path in [*SCRIPTS, ROOT / ".github/workflows/release.yml"]:
        for line in path.read_text().splitlines():
            if re.search(r"\brm\b|Remove-Item", line) and not line.lstrip().startswith("#"):
                assert allowed.search(line), f"{path.name}: {line.strip()}"


def test_build_requirements_are_pinned():
    lines = [
        line.split("#")[0].strip()
        for line in (ROOT / "build" / "requirements-build.txt").read_text().splitlines()
    ]
    requirements = [line for line in lines if line]
    assert "-r ../requirements.txt" in requirements
    pins = [r for r in requirements if not r.startswith("-r")]
    assert all(re.match(r"^[A-Za-z0-9_.-]+==[^=;\s]+(;.*)?$", r) for r in pins), pins
    names = {r.split("==")[0].lower() for r in pins}
    assert {"pyinstaller", "pyinstaller-hooks-contrib"} <= names
    # the Windows fallback notifier, with what it imports (pkg_resources: setuptools < 82)
    windows = {r.split("==")[0].lower(): r for r in pins if 'sys_platform == "win32"' in r}
    assert {"win10toast-click", "pypiwin32", "pywin32", "setuptools"} <= set(windows)
    assert int(windows["setuptools"].split("==")[1].split(".")[0]) < 82


def test_the_macos_image_names_its_architecture_and_says_when_unsigned():
    text = (ROOT / "build" / "macos.sh").read_text()
    assert 'DMG="$ROOT/dist/telex-start-$version-macos-$arch$unsigned.dmg"' in text
    assert 'arch=$(lipo -archs "$APP/Contents/MacOS/telex-start")' in text
    assert "unsigned=-unsigned" in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck():
    scripts = [str(s) for s in SCRIPTS if s.suffix == ".sh"]
    proc = subprocess.run(
        ["shellcheck", *scripts], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout


def iss_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in ISS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if re.fullmatch(r"\[\w+\]", line):
            current = line[1:-1]
            sections[current] = []
        else:
            sections.setdefault(current, []).append(line)
    return sections


def iss_defines() -> dict[str, str]:
    return dict(re.findall(r'^#define (\w+) "([^"]*)"', ISS.read_text(), re.MULTILINE))


def test_installer_is_per_user_with_menu_entry_uninstaller_and_login_task():
    sections = iss_sections()
    setup = dict(line.split("=", 1) for line in sections["Setup"])
    assert setup["PrivilegesRequired"] == "lowest"
    assert setup["DefaultDirName"].startswith("{autopf}")
    assert setup.get("Uninstallable", "yes") == "yes"
    assert re.fullmatch(r"\{\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", setup["AppId"])
    assert (ROOT / setup["SetupIconFile"].replace("\\", "/")).is_file()
    assert any(line.startswith('Name: "{autoprograms}') for line in sections["Icons"])
    (task,) = [line for line in sections["Tasks"] if line.startswith('Name: "startatlogin"')]
    assert task.endswith("Flags: unchecked")  # offered, off until the user ticks it (SECURITY.md)
    run_key = [line for line in sections["Registry"] if "CurrentVersion\\Run" in line]
    assert any("Tasks: startatlogin" in line for line in run_key)
    assert all("uninsdeletevalue" in line for line in run_key)  # no leftovers after uninstall
    assert not any("Tasks: not" in line for line in run_key)  # an upgrade keeps the menu's choice
    assert iss_defines()["RunValueName"] == autostart.RUN_VALUE  # the menu's switch sees it
    (files,) = sections["Files"]
    assert files.startswith('Source: "dist\\telex-start\\*"')


def test_installer_mutex_is_the_one_the_app_creates():
    sections = iss_sections()
    setup = dict(line.split("=", 1) for line in sections["Setup"])
    assert setup["AppMutex"] == "{#AppMutexName}"
    assert iss_defines()["AppMutexName"] == single_instance.WINDOWS_MUTEX


def test_entitlements_grant_only_what_ctypes_callbacks_need():
    entitlements = plistlib.loads((ROOT / "build" / "macos" / "entitlements.plist").read_bytes())
    assert entitlements == {"com.apple.security.cs.allow-unsigned-executable-memory": True}


def test_macos_script_signs_notarises_and_staples_when_credentials_exist():
    text = (ROOT / "build" / "macos.sh").read_text()
    for needle in (
        "MACOS_CODESIGN_IDENTITY",
        "xcrun notarytool submit",
        "xcrun stapler staple",
        "spctl --assess",
        "hdiutil create",
        "codesign --verify --deep --strict",
    ):
        assert needle in text, needle
