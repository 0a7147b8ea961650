"""The frozen Linux binary (``bash build/linux.sh`` -> dist/telex-start), run as a user runs it.

It reports its version, passes its own --self-test on a desktop and fails it without one, verifies
TLS with the trust it was given, carries no dev-stack or test code and no secret, and does the
whole headless flow against the local Telex stack and the real Centrifugo, with the notification
landing in dunst.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import trustme

from app import __version__
from devstack.stack import DEMO_PASSWORD, LocalStack
from tests.support.centrifugo import DEFAULT_API_KEY, DEFAULT_HMAC_SECRET
from tests.support.desktop import NotificationView, needs_desktop
from tests.support.frozen_app import (
    detail,
    headless_flow_reaches_dunst,
    private_env,
    self_test,
    statuses,
)

#: Lists a PyInstaller archive with PyInstaller's own reader (run by the interpreter that built
#: it) and greps every entry, native libraries and frozen modules alike, for the given patterns.
ARCHIVE_SCAN = r"""
import json, re, sys
from PyInstaller.archive.readers import PKG_ITEM_PYZ, CArchiveReader

binary = sys.argv[1]
patterns = {name: re.compile(v.encode()) for name, v in json.loads(sys.argv[2]).items()}
archive = CArchiveReader(binary)
entries, modules, hits = [], [], []

def scan(where, data):
    for name, pattern in patterns.items():
        for match in pattern.finditer(data or b""):
            hits.append([where, name, match.group()[:60].decode("latin-1")])

for name, (*_, typecode) in archive.toc.items():
    entries.append(name)
    if typecode == PKG_ITEM_PYZ:
        pyz = archive.open_embedded_archive(name)
        for module in pyz.toc:
            modules.append(module)
            scan(module, pyz.extract(module, raw=True))
    else:
        scan(name, archive.extract(name))
json.dump({"entries": entries, "modules": modules, "hits": hits}, sys.stdout)
"""

SECRET_PATTERNS = {
    "private key": r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40,}",
    "JWT": r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    "AWS access key": r"AKIA[0-9A-Z]{16}",
    "GitHub token": r"gh[pousr]_[A-Za-z0-9]{36}",
    "dev-stack demo password": re.escape(DEMO_PASSWORD),
    "test HMAC secret": re.escape(DEFAULT_HMAC_SECRET),
    "test API key": re.escape(DEFAULT_API_KEY),
}

#: Strings the archive certainly holds (frozen app code, a native library): the scan must find
#: them, or it is not reading the archive and its silence about secrets means nothing.
CONTROL_PATTERNS = {
    "control: app code": r"DISPLAY is not set",
    "control: native library": r"OpenSSL \d+\.\d+\.\d+",
}

#: Top-level packages that must stay out of a release build.
FORBIDDEN = ("devstack", "tests", "pytest", "_pytest", "jwt", "trustme", "centrifuge", "gi")


def test_version(frozen_binary):
    proc = subprocess.run(
        [str(frozen_binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, f"telex-start {__version__}\n")


@needs_desktop
def test_self_test_passes_on_the_desktop(frozen_binary, tmp_path):
    code, report = self_test(frozen_binary, private_env(tmp_path))

    assert code == 0, json.dumps(report, indent=2)
    assert report["frozen"] is True
    assert report["version"] == __version__
    expected = dict.fromkeys(
        ("notifiers", "instance", "tk", "tray", "icons", "tls_ca_store", "config_dir", "log_dir"),
        "pass",
    )
    got = statuses(report)
    assert got.pop("tls_verify") in ("pass", "skip")  # skip: the API host is not reachable here
    assert got == expected
    assert detail(report, "tray") == "backend pystray._xorg"  # the icon object built with it
    assert detail(report, "tk").startswith("a x11 window opened and closed")
    assert detail(report, "instance") == "claimed, answered a hand-over, released"
    assert report["optional_fallbacks"] == {}
    assert re.search(r"/_MEI\w+/icons$", detail(report, "icons"))
    assert detail(report, "log_dir") == str(tmp_path / ".local/state/telex-start/log")


def test_self_test_fails_without_a_display(frozen_binary, tmp_path):
    env = private_env(tmp_path)
    env.pop("DISPLAY", None)

    code, report = self_test(frozen_binary, env, "--api-url", "http://127.0.0.1:9/api/v1")

    assert code == 1
    assert report["passed"] is False
    failed = {name for name, status in statuses(report).items() if status == "fail"}
    assert failed == {"tray"}
    assert "DISPLAY is not set" in detail(report, "tray")
    assert statuses(report)["tk"] == "skip"  # no window without a display, said so


def test_tls_verifies_with_the_trust_it_is_given(frozen_binary, tmp_path, tls_server):
    """A real handshake through the bundled OpenSSL: the CA from --ca-file is trusted, and a
    certificate nobody vouches for is refused."""
    ca, port = tls_server
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    env = private_env(tmp_path, PYSTRAY_BACKEND="dummy")
    api = f"https://localhost:{port}/api/v1"

    code, report = self_test(frozen_binary, env, "--api-url", api, "--ca-file", str(ca_file))
    assert code == 0, json.dumps(report, indent=2)
    assert detail(report, "tls_verify").startswith(f"localhost:{port} verified (TLSv1.3")

    code, report = self_test(frozen_binary, env, "--api-url", api)
    assert code == 1
    assert statuses(report)["tls_verify"] == "fail"
    assert "unable to get local issuer certificate" in detail(report, "tls_verify")


def _can_unshare_mounts() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs root and unshare -m")
def test_finds_the_ca_bundle_where_this_distribution_keeps_it(frozen_binary, tmp_path):
    """The bundled OpenSSL looks where the build machine (Debian) keeps CAs, /usr/lib/ssl; other
    distributions keep them elsewhere. Hide that dir in a private mount namespace, as on such a
    system: the app must still find the distribution's bundle."""
    env = private_env(tmp_path, PYSTRAY_BACKEND="dummy")
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    hide = 'mount -t tmpfs none /usr/lib/ssl && exec "$0" "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", hide, str(frozen_binary), "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(proc.stdout)
    assert statuses(report)["tls_ca_store"] == "pass", detail(report, "tls_ca_store")


def test_the_archive_holds_no_dev_or_test_code_and_no_secret(frozen_binary, build_python):
    assert re.search(SECRET_PATTERNS["private key"], trustme.CA().private_key_pem.bytes().decode())
    patterns = {**SECRET_PATTERNS, **CONTROL_PATTERNS}
    proc = subprocess.run(
        [str(build_python), "-c", ARCHIVE_SCAN, str(frozen_binary), json.dumps(patterns)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    archive = json.loads(proc.stdout)
    modules, entries = set(archive["modules"]), set(archive["entries"])
    hits = [(where, name) for where, name, _ in archive["hits"] if not name.startswith("control")]
    controls = {(name, where) for where, name, _ in archive["hits"] if name.startswith("control")}

    leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN))
    assert leaked == []
    assert hits == []
    assert ("control: app code", "app.selftest") in controls
    assert any(n == "control: native library" and "libcrypto" in w for n, w in controls)
    # ... while what the app loads lazily is in
    assert {
        "app.selftest",
        "app.ui.tray",
        "app.ui.xorg",
        "app.notify.desktop",
        "app.notify.log_only",
        "desktop_notifier.backends.dbus",
        "dbus_fast.aio",
        "pystray._xorg",
    } <= modules
    assert {
        "icons/telex-start.png",
        "icons/tray-connected.png",
        "desktop_notifier/resources/python.png",
    } <= entries


@needs_desktop
async def test_headless_flow_reaches_dunst(
    frozen_binary, tmp_path, centrifugo_stack: LocalStack, notifications: NotificationView
):
    await headless_flow_reaches_dunst(
        frozen_binary, tmp_path / "home", centrifugo_stack, notifications
    )
