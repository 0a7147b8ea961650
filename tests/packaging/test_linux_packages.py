"""The .deb and the .rpm (``bash build/linux.sh`` -> dist/), checked as a distribution would.

Read: the control fields and the rpm header (version, dependencies: what the system must provide
and nothing the bundle carries), the file lists, lintian (no error, no warning; every override
has a reason), desktop-file-validate, appstreamcli, the icons. Run: the app unpacked with
``dpkg-deb -x``; the .rpm installed into a temp root (``rpm --root``); and, where root and dpkg
are available (CI), the .deb installed on this machine with ``dpkg -i``: the installed app's
--version, --self-test and the headless flow against the real Centrifugo with the notification in
dunst, then ``dpkg -r`` and ``--purge`` leave no file of ours behind.

Missing packages or tools skip these tests; on CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import configparser
import gzip
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
from PIL import Image

from app import __version__
from app.constants import APP_ID, APP_NAME
from app.ui.dialogs import WINDOW_CLASS
from devstack.stack import LocalStack
from tests.support.desktop import NotificationView, in_ci, needs_desktop
from tests.support.frozen_app import (
    detail,
    headless_flow_reaches_dunst,
    private_env,
    self_test,
    statuses,
)

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = "/usr/lib/telex-start"
SNAPSHOT_ROOTS = ("/usr", "/etc", "/opt")


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package_py = load("telex_package", ROOT / "build" / "linux" / "package.py")
make_icons = load("telex_make_icons", ROOT / "build" / "make_icons.py")
VERSION = package_py.distro_version(__version__)
HICOLOR_SIZES: tuple[int, ...] = make_icons.HICOLOR_SIZES


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this must not be skipped)", pytrace=False)
    pytest.skip(reason)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (bash tests/run.sh installs it)")
    return path


def run(*argv: str, timeout: float = 300) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (
        f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
    )
    return proc.stdout


def built(env: str, pattern: str) -> Path:
    if not sys.platform.startswith("linux"):
        pytest.skip("the Linux packages")
    if os.environ.get(env):
        path = Path(os.environ[env])
    else:
        matches = sorted((ROOT / "dist").glob(pattern))
        path = matches[-1] if matches else ROOT / "dist" / pattern
    if not path.is_file():
        unavailable(f"no package at {path} (build it with: bash build/linux.sh)")
    return path


@pytest.fixture(scope="module")
def deb() -> Path:
    return built("TELEX_DEB", "telex-start_*.deb")


@pytest.fixture(scope="module")
def rpm_file() -> Path:
    return built("TELEX_RPM", "telex-start-*.rpm")


@pytest.fixture(scope="module")
def deb_tree(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb unpacked as a user would look at it: ``dpkg-deb -x``."""
    root = tmp_path_factory.mktemp("deb-x")
    run(tool("dpkg-deb"), "-x", str(deb), str(root))
    return root


def deb_paths(deb: Path) -> dict[str, str]:
    """Path -> ``dpkg-deb -c`` line (mode, owner, size, link target)."""
    listing = run(tool("dpkg-deb"), "-c", str(deb))
    paths = {}
    for line in listing.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0]
        paths["/" + name.removeprefix("./").rstrip("/")] = line
    paths.pop("/", None)
    return paths


def payload_files(paths: dict[str, str]) -> set[str]:
    return {path for path, line in paths.items() if not line.startswith("d")}


# -- reading the .deb ---------------------------------------------------------------------------


def test_deb_control_fields(deb):
    assert deb.name == f"telex-start_{VERSION}-1_amd64.deb"
    fields = {
        name: run(tool("dpkg-deb"), "-f", str(deb), name).strip()
        for name in ("Package", "Version", "Architecture", "Depends", "Recommends", "Suggests")
    }
    assert fields["Package"] == "telex-start"
    assert fields["Version"] == f"{VERSION}-1"
    assert fields["Architecture"] == "amd64"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    # What dpkg-shlibdeps finds the bundle needs from the system: libc, and libxcb (which
    # PyInstaller never bundles); nothing the bundle carries itself.
    assert re.fullmatch(r"libc6 \(>= 2\.\d+\)", depends[0]), depends
    assert {d.split()[0] for d in depends} == {"libc6", "libxcb1"}
    assert fields["Recommends"] == "notification-daemon"
    assert fields["Suggests"] == "gnome-shell-extension-appindicator"


def test_deb_has_no_maintainer_scripts(deb, tmp_path):
    run(tool("dpkg-deb"), "-e", str(deb), str(tmp_path / "DEBIAN"))
    assert sorted(p.name for p in (tmp_path / "DEBIAN").iterdir()) == ["control", "md5sums"]


def test_deb_files(deb):
    paths = deb_paths(deb)
    files = payload_files(paths)
    assert paths["/usr/bin/telex-start"].endswith("-> ../lib/telex-start/telex-start")
    assert paths[f"{APP_DIR}/telex-start"].startswith("-rwxr-xr-x root/root")
    icons = {f"/usr/share/icons/hicolor/{n}x{n}/apps/{APP_ID}.png" for n in HICOLOR_SIZES}
    assert {
        f"/usr/share/applications/{APP_ID}.desktop",
        f"/usr/share/metainfo/{APP_ID}.metainfo.xml",
        "/usr/share/man/man1/telex-start.1.gz",
        "/usr/share/doc/telex-start/copyright",
        "/usr/share/doc/telex-start/changelog.Debian.gz",
        "/usr/share/lintian/overrides/telex-start",
        f"{APP_DIR}/_internal/icons/telex-start.png",
        *icons,
    } <= files
    outside = {p for p in files if not p.startswith(f"{APP_DIR}/")}
    assert len(outside) == 7 + len(icons), sorted(outside)
    # Nothing in /etc (no autostart entry: that is the user's choice, written by the app), /opt
    # or /usr/local; everything root's, nothing writable by others.
    assert not [p for p in paths if p.startswith(("/etc", "/opt", "/usr/local", "/var"))]
    assert all(" root/root " in line for line in paths.values())
    assert not [line for line in paths.values() if line[8] == "w" and line[0] != "l"]
    libraries = [
        line
        for path, line in paths.items()
        if re.search(r"\.so(\.|$)", path) and not line.startswith("l")
    ]
    assert libraries
    assert all(line.startswith("-rw-r--r--") for line in libraries)


def test_lintian_reports_no_error_and_no_warning(deb):
    proc = subprocess.run(
        [tool("lintian"), "--fail-on", "error,warning", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert (proc.returncode, tags) == (0, []), proc.stdout + proc.stderr


def test_every_lintian_override_gives_its_reason():
    """Each override line sits under a comment that says why (a blank line ends a reason)."""
    reason = False
    overrides = 0
    for line in (ROOT / "build" / "linux" / "lintian-overrides").read_text().splitlines():
        if not line.strip():
            reason = False
        elif line.startswith("#"):
            reason = True
        else:
            overrides += 1
            assert line.startswith("telex-start: ")
            assert reason, f"no reason given for: {line}"
    assert overrides


def test_every_desktop_entry_validates(deb_tree):
    entries = list(deb_tree.rglob("*.desktop"))
    assert [e.relative_to(deb_tree) for e in entries] == [
        Path(f"usr/share/applications/{APP_ID}.desktop")
    ]
    for entry in entries:
        proc = subprocess.run(
            [tool("desktop-file-validate"), str(entry)], capture_output=True, text=True, check=False
        )
        assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


class DesktopEntryParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # desktop entry keys are case-sensitive


def test_the_menu_entry(deb_tree):
    parser = DesktopEntryParser(interpolation=None)
    parser.read(deb_tree / f"usr/share/applications/{APP_ID}.desktop", encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == APP_NAME
    assert entry["Exec"] == "telex-start"
    assert entry["Icon"] == APP_ID
    assert entry["Terminal"] == "false"
    assert entry["StartupWMClass"] == WINDOW_CLASS  # the class of the app's Tk windows
    assert {"Network", "InstantMessaging"} <= set(entry["Categories"].split(";"))
    assert (deb_tree / "usr/bin" / entry["Exec"]).is_symlink()


def test_appstream_metainfo_validates(deb_tree):
    metainfo = deb_tree / f"usr/share/metainfo/{APP_ID}.metainfo.xml"
    appstreamcli = tool("appstreamcli")
    run(appstreamcli, "validate", "--no-net", "--pedantic", str(metainfo))
    run(appstreamcli, "validate-tree", "--no-net", str(deb_tree))  # desktop entry + icons too
    text = metainfo.read_text()
    assert f'<release version="{VERSION}" date="' in text
    assert f'<launchable type="desktop-id">{APP_ID}.desktop</launchable>' in text


def test_icons_are_the_size_their_folder_says(deb_tree):
    for size in HICOLOR_SIZES:
        path = deb_tree / f"usr/share/icons/hicolor/{size}x{size}/apps/{APP_ID}.png"
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (size, size), "RGBA")
    # the same drawing as the app's own icon (make_icons.py scales both from one master)
    with (
        Image.open(deb_tree / f"usr/share/icons/hicolor/256x256/apps/{APP_ID}.png") as packaged,
        Image.open(ROOT / "icons" / "telex-start.png") as app_icon,
    ):
        assert packaged.tobytes() == app_icon.convert("RGBA").tobytes()


def test_the_man_page_lists_every_option(deb_tree):
    page = gzip.decompress((deb_tree / "usr/share/man/man1/telex-start.1.gz").read_bytes()).decode()
    usage = run(str(deb_tree / "usr/bin/telex-start"), "--help")
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", usage))
    assert options
    assert {o for o in options if o.replace("-", "\\-") not in page} == set()
    man = shutil.which("man")
    if man is not None:  # groff's warnings, as lintian's manpage check reads them
        proc = subprocess.run(
            [
                man,
                "--warnings",
                "-E",
                "UTF-8",
                "-l",
                "-Tutf8",
                "-Z",
                str(deb_tree / "usr/share/man/man1/telex-start.1.gz"),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "MANROFFSEQ": ""},
        )
        assert proc.stderr == ""


def test_unpacked_app_reports_its_version(deb_tree):
    out = run(str(deb_tree / "usr/bin/telex-start"), "--version", timeout=60)
    assert out == f"telex-start {__version__}\n"


# -- reading the .rpm ---------------------------------------------------------------------------


def rpm_query(rpm_file: Path, *args: str) -> str:
    return run(tool("rpm"), "-qp", *args, str(rpm_file))


def test_rpm_header(rpm_file):
    assert rpm_file.name == f"telex-start-{VERSION}-1.x86_64.rpm"
    info = rpm_query(rpm_file, "-i")
    fields = dict(re.findall(r"^(\w[\w ]*?)\s*: (.*)$", info, re.MULTILINE))
    assert (fields["Name"], fields["Version"], fields["Release"]) == ("telex-start", VERSION, "1")
    assert fields["Architecture"] == "x86_64"
    assert fields["URL"] == "https://telex.im"
    assert fields["License"].startswith("LicenseRef-Telex-Start-unlicensed AND ")
    assert rpm_query(rpm_file, "--scripts") == ""


def test_rpm_dependencies_are_the_system_s_not_the_bundle_s(rpm_file):
    requires = set(rpm_query(rpm_file, "--requires").splitlines())
    provides = set(rpm_query(rpm_file, "--provides").splitlines())
    sonames = {r.split("(")[0] for r in requires if ".so" in r}
    assert sonames == {
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libdl.so.2",
        "libm.so.6",
        "libpthread.so.0",
        "libxcb.so.1",
    }
    assert "hicolor-icon-theme" in requires
    assert not [p for p in provides if ".so" in p]  # the bundle's libraries stay private
    assert f"application({APP_ID}.desktop)" in provides
    assert f"metainfo({APP_ID}.metainfo.xml)" in provides
    assert rpm_query(rpm_file, "--recommends").split() == ["desktop-notification-daemon"]
    assert rpm_query(rpm_file, "--suggests").split() == ["gnome-shell-extension-appindicator"]


def test_rpm_carries_what_the_deb_carries(rpm_file, deb):
    listed = set(rpm_query(rpm_file, "-l").splitlines())
    deb_only = {
        "/usr/share/doc/telex-start/copyright",
        "/usr/share/doc/telex-start/changelog.Debian.gz",
        "/usr/share/lintian/overrides/telex-start",
    }
    expected = (payload_files(deb_paths(deb)) - deb_only) | {
        "/usr/share/licenses/telex-start/copyright"
    }
    files = {
        line.split()[-1]
        for line in rpm_query(rpm_file, "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]").splitlines()
        if not line.startswith("d")
    }
    assert files == expected
    # It owns its own folders, not the shared ones (hicolor's belong to hicolor-icon-theme).
    assert {APP_DIR, "/usr/share/licenses/telex-start"} <= listed
    assert not [p for p in listed if p in ("/usr/share/icons/hicolor", "/usr/bin", "/usr/lib")]


def test_rpm_installs_into_a_temp_root_and_removes_cleanly(rpm_file, tmp_path):
    rpm = tool("rpm")
    root = tmp_path / "root"
    root.mkdir()
    run(rpm, "--root", str(root), "--initdb")
    before = set(root.rglob("*"))
    run(rpm, "--root", str(root), "-i", "--nodeps", str(rpm_file))
    assert (
        run(rpm, "--root", str(root), "-q", "telex-start").strip()
        == f"telex-start-{VERSION}-1.x86_64"
    )
    installed = root / "usr/bin/telex-start"
    assert os.readlink(installed) == "../lib/telex-start/telex-start"
    assert run(str(installed), "--version", timeout=60) == f"telex-start {__version__}\n"
    run(
        rpm, "--root", str(root), "--verify", "--nodeps", "telex-start"
    )  # sizes, digests, modes as recorded
    run(rpm, "--root", str(root), "-e", "--nodeps", "telex-start")
    left = {p for p in root.rglob("*") if "var/lib/rpm" not in str(p)} - before
    # Only folders the package does not own may stay (usr/, the hicolor size folders: on a real
    # system the filesystem and hicolor-icon-theme packages own them); no file.
    assert sorted(p for p in left if not p.is_dir()) == []
    assert not (root / APP_DIR.lstrip("/")).exists()
    assert not (root / "usr/share/licenses/telex-start").exists()


# -- the .deb installed on this machine ---------------------------------------------------------


def snapshot() -> set[str]:
    paths: set[str] = set()
    for top in SNAPSHOT_ROOTS:
        for dirpath, dirnames, filenames in os.walk(top):
            paths.update(os.path.join(dirpath, name) for name in dirnames + filenames)
    return paths


@dataclass
class Installed:
    deb: Path
    before: set[str]
    listed: list[str] = field(default_factory=list)
    removed: bool = False

    def remove(self) -> None:
        if not self.removed:
            run("dpkg", "-r", "telex-start")
            run("dpkg", "--purge", "telex-start")
            self.removed = True


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[Installed]:
    """The .deb installed with dpkg -i (root and dpkg only: CI runs as root); removed after."""
    if os.geteuid() != 0 or shutil.which("dpkg") is None:
        unavailable("installing the .deb needs root and dpkg")
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "telex-start"],
        capture_output=True,
        text=True,
        check=False,
    )
    if "installed" in status.stdout and "not-installed" not in status.stdout:
        pytest.fail("telex-start is installed already: remove it first (dpkg -r telex-start)")
    state = Installed(deb, snapshot())
    run("dpkg", "-i", str(deb))
    state.listed = run("dpkg", "-L", "telex-start").splitlines()
    try:
        yield state
    finally:
        state.remove()


def test_installed_files_are_the_package_s(installed, deb):
    assert set(payload_files(deb_paths(deb))) <= set(installed.listed)
    assert os.path.realpath("/usr/bin/telex-start") == f"{APP_DIR}/telex-start"


def test_installed_app_reports_its_version(installed):
    assert run("telex-start", "--version", timeout=60) == f"telex-start {__version__}\n"


@needs_desktop
def test_installed_app_passes_its_self_test(installed, tmp_path):
    code, report = self_test(Path("/usr/bin/telex-start"), private_env(tmp_path))
    assert code == 0, report
    assert report["frozen"] is True
    assert report["version"] == __version__
    got = statuses(report)
    assert got.pop("tls_verify") in ("pass", "skip")
    assert set(got.values()) == {"pass"}
    assert detail(report, "icons").endswith(f" in {APP_DIR}/_internal/icons")
    assert detail(report, "tray") == "backend pystray._xorg"


@needs_desktop
async def test_installed_app_headless_flow_reaches_dunst(
    installed, tmp_path, centrifugo_stack: LocalStack, notifications: NotificationView
):
    await headless_flow_reaches_dunst(
        Path("/usr/bin/telex-start"), tmp_path / "home", centrifugo_stack, notifications
    )


def test_removal_leaves_nothing_behind(installed):
    installed.remove()
    after = snapshot()
    new = after - installed.before
    ours = {p for p in installed.listed if p not in installed.before}
    assert ours, "dpkg -L listed nothing new"
    assert sorted(ours & after) == []
    # Other work on this machine may add files meanwhile; nothing of ours may be among them.
    assert sorted(p for p in new if "telex" in p.lower()) == []
    assert not Path("/usr/bin/telex-start").exists()
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "telex-start"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode != 0 or "not-installed" in status.stdout
