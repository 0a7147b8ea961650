"""--self-test checks, from source: each one passes where it should and fails with a reason.

The same checks run on the frozen binary in test_frozen_linux.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import ssl
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import trustme

from app import selftest
from app.config import Settings, load_settings
from app.selftest import (
    NOTIFIER_MODULES,
    TRAY_BACKENDS,
    check_ca_store,
    check_icons,
    check_tls_handshake,
    check_writable_dir,
    hidden_imports,
    run_self_test,
    self_test_command,
)
from tests.support.desktop import needs_desktop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The single-instance claim of these tests, apart from an app the user may be running."""
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    return run


def settings_in(tmp_path: Path) -> Settings:
    """Defaults, with the config and log dirs inside the test's temp dir."""
    settings = load_settings({"config_dir": str(tmp_path / "config")}, environ={})
    return dataclasses.replace(settings, log_dir=tmp_path / "logs")


def test_every_notifier_backend_of_the_app_is_checked_somewhere():
    """A backend added to app/notify/ must be listed for its OS, or the frozen build may miss it."""
    backends = {
        f"app.notify.{path.stem}"
        for path in (ROOT / "app" / "notify").glob("*.py")
        if path.stem not in ("__init__", "base")
    }
    listed = {name for modules in NOTIFIER_MODULES.values() for name in modules}
    assert backends <= listed, f"not in selftest.NOTIFIER_MODULES: {sorted(backends - listed)}"


@pytest.mark.parametrize("platform_name", ["linux", "win32", "darwin"])
def test_the_spec_bundles_the_backends_of_each_os(platform_name):
    modules = hidden_imports(platform_name)
    assert TRAY_BACKENDS[platform_name] in modules
    assert any(m.startswith("desktop_notifier.backends.") for m in modules)
    assert {"app.notify.desktop", "app.notify.log_only"} <= set(modules)


def test_the_checks_of_this_os_pass_from_source():
    for name in NOTIFIER_MODULES[selftest.platform_key()]:
        __import__(name)
    assert selftest.check_notifiers()[0] == "pass"
    assert selftest.check_tk()[0] == ("pass" if os.environ.get("DISPLAY") else "skip")
    assert selftest.check_instance() == ("pass", "claimed, answered a hand-over, released")
    status, detail = check_icons()
    assert status == "pass"
    assert detail.endswith(f" images in {ROOT / 'icons'}")


def test_a_missing_backend_fails_and_names_it(monkeypatch):
    monkeypatch.setitem(
        NOTIFIER_MODULES, selftest.platform_key(), ("app.notify.log_only", "app.notify.nowhere")
    )
    status, detail = selftest.check_notifiers()
    assert status == "fail"
    assert "app.notify.nowhere: ModuleNotFoundError" in detail


def test_the_tray_fails_without_a_display_and_says_why(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("PYSTRAY_BACKEND", raising=False)
    status, detail = selftest.check_tray()
    assert status == "fail"
    assert "DISPLAY is not set" in detail


def _self_test_subprocess(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    """The checks that import pystray run in a child: pystray picks its backend once per process."""
    code = (
        "import json, sys; from app.config import load_settings; "
        "from app.selftest import run_self_test; "
        "rc, report = run_self_test(load_settings(dict(zip(sys.argv[1::2], sys.argv[2::2])))); "
        "print(json.dumps(report)); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEX_", "PYSTRAY_"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_RUNTIME_DIR=str(tmp_path / "run"),
        **extra,
    )
    return env


def test_report_and_exit_code_without_a_display(tmp_path):
    env = _child_env(tmp_path)
    env.pop("DISPLAY", None)
    code, report = _self_test_subprocess(env, "api_url", "http://127.0.0.1:9")

    assert code == 1
    assert report["passed"] is False
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {
        "notifiers": "pass",
        "instance": "pass",
        "tk": "skip",  # no window without a display; on Windows and macOS that fails
        "tray": "fail",
        "icons": "pass",
        "tls_ca_store": "pass",
        "tls_verify": "skip",  # plain http to this machine: nothing to verify
        "config_dir": "pass",
        "log_dir": "pass",
    }
    assert report["version"]
    assert report["frozen"] is False
    assert report["optional_fallbacks"] == {}  # Linux has none
    assert (tmp_path / "state" / "telex-start" / "log").is_dir()


def test_a_forced_tray_backend_passes_and_is_reported(tmp_path):
    env = _child_env(tmp_path, PYSTRAY_BACKEND="dummy")
    env.pop("DISPLAY", None)
    code, report = _self_test_subprocess(env, "api_url", "http://127.0.0.1:9")

    tray = next(c for c in report["checks"] if c["name"] == "tray")
    assert tray["status"] == "pass"
    assert tray["detail"].startswith("backend pystray.")
    assert tray["detail"].endswith("(forced by PYSTRAY_BACKEND=dummy)")
    assert code == 0


def test_a_crashing_check_fails_alone(monkeypatch, tmp_path):
    def boom() -> selftest.Outcome:
        raise OSError("libfoo.so: cannot open shared object file")

    monkeypatch.setattr(selftest, "check_tray", boom)
    monkeypatch.setattr(selftest, "check_tls_handshake", lambda *_: ("skip", "offline"))

    code, report = run_self_test(settings_in(tmp_path))

    assert code == 1
    tray = next(c for c in report["checks"] if c["name"] == "tray")
    assert tray["status"] == "fail"
    assert tray["detail"] == "OSError: libfoo.so: cannot open shared object file"
    assert len(report["checks"]) == 9


def test_skips_do_not_fail_the_self_test(monkeypatch, tmp_path):
    monkeypatch.setattr(selftest, "check_tray", lambda: ("pass", "stub"))
    monkeypatch.setattr(selftest, "check_tls_handshake", lambda *_: ("skip", "offline"))

    code, report = run_self_test(settings_in(tmp_path))

    assert (code, report["passed"]) == (0, True)


def test_icons_that_are_missing_or_broken_fail(monkeypatch, tmp_path):
    (tmp_path / "icons").mkdir()
    (tmp_path / "icons" / "telex-start.png").write_bytes(b"not a png")
    monkeypatch.setattr(selftest, "resource_path", tmp_path.joinpath)

    status, detail = check_icons()

    assert status == "fail"
    assert "telex-start.png" in detail
    assert "tray-connected.png" in detail


def test_a_context_without_any_ca_fails(monkeypatch):
    empty = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")

    status, detail = check_ca_store(empty)

    assert status == "fail"
    assert "no CA certificates" in detail


def test_a_hashed_ca_directory_counts(monkeypatch, tmp_path):
    (tmp_path / "5ad8a5d6.0").write_text("lazily read by OpenSSL")
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))

    status, detail = check_ca_store(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))

    assert (status, detail) == ("pass", f"hashed CA directory {tmp_path}")


def test_loaded_ca_certificates_count():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trustme.CA().configure_trust(context)

    assert check_ca_store(context) == ("pass", "1 CA certificates")


def test_a_trusted_certificate_verifies(tls_server):
    ca, port = tls_server
    context = ssl.create_default_context()
    ca.configure_trust(context)

    status, detail = check_tls_handshake(context, f"https://localhost:{port}/api/v1")

    assert status == "pass"
    assert f"localhost:{port} verified" in detail


def test_an_untrusted_certificate_fails(tls_server):
    _, port = tls_server

    status, detail = check_tls_handshake(ssl.create_default_context(), f"https://localhost:{port}")

    assert status == "fail"
    assert "unable to get local issuer certificate" in detail


def test_a_certificate_for_another_host_fails(tls_server):
    ca, port = tls_server
    context = ssl.create_default_context()
    ca.configure_trust(context)

    status, detail = check_tls_handshake(context, f"https://127.0.0.1:{port}")

    assert status == "fail"
    assert "mismatch" in detail.lower() or "doesn't match" in detail


def test_an_unreachable_host_is_skipped_not_failed():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens there

    status, detail = check_tls_handshake(ssl.create_default_context(), f"https://127.0.0.1:{port}")

    assert status == "skip"
    assert "cannot reach" in detail


def test_writable_dirs_are_created_and_probed(tmp_path):
    assert check_writable_dir(tmp_path / "a" / "b") == ("pass", str(tmp_path / "a" / "b"))
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe file is gone


def test_a_dir_that_cannot_exist_fails(tmp_path):
    (tmp_path / "file").write_text("")
    status, detail = check_writable_dir(tmp_path / "file" / "logs")
    assert status == "fail"
    assert str(tmp_path / "file" / "logs") in detail


def test_without_stdout_the_report_goes_to_the_log_dir(monkeypatch, tmp_path):
    """A windowed Windows build started from a shortcut has sys.stdout = None."""
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(selftest, "check_tray", lambda: ("pass", "stub"))
    monkeypatch.setattr(selftest, "check_tls_handshake", lambda *_: ("skip", "offline"))

    assert self_test_command(settings_in(tmp_path)) == 0

    report = json.loads((tmp_path / "logs" / "self-test.json").read_text())
    assert report["passed"] is True


def test_the_instance_is_claimed_and_answers_a_hand_over():
    from app.system.single_instance import claim

    assert selftest.check_instance() == ("pass", "claimed, answered a hand-over, released")
    with claim() as again:  # released: the desktop mode can start after the self-test
        assert again is not None


def test_a_running_instance_is_reported_not_failed():
    from app.system.single_instance import claim

    with claim() as running:
        assert running is not None
        status, detail = selftest.check_instance()
    assert status == "skip"
    assert "another Telex Start of this user runs" in detail


def test_a_listener_nobody_reaches_fails(monkeypatch):
    from app.system import single_instance

    monkeypatch.setattr(single_instance, "hand_over", lambda timeout: False)
    status, detail = selftest.check_instance()
    assert status == "fail"
    assert "could not reach this one" in detail


def test_without_a_display_linux_skips_the_window_and_says_why(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    status, detail = selftest.check_tk()
    assert status == "skip"
    assert "no window was opened: no X display" in detail


@pytest.mark.parametrize("platform_name", ["win32", "darwin"])
def test_on_windows_and_macos_a_window_that_cannot_open_fails(monkeypatch, platform_name):
    monkeypatch.setattr(sys, "platform", platform_name)
    monkeypatch.delenv("DISPLAY", raising=False)  # here: Tk cannot open a window either
    result = selftest._run_check("tk", selftest.check_tk)
    assert result.status == "fail"
    assert result.detail.startswith("TclError: ")


@needs_desktop
def test_a_real_window_opens_and_closes():
    status, detail = selftest.check_tk()
    assert status == "pass"
    assert detail.startswith("a x11 window opened and closed, Tcl 8.6")


def test_the_tray_icon_object_is_built_with_the_backend(monkeypatch):
    built: list[tuple[Any, ...]] = []

    class Icon:
        __module__ = "pystray._win32"

        def __init__(self, *args: Any) -> None:
            built.append(args)

    monkeypatch.setitem(sys.modules, "pystray", types.SimpleNamespace(Icon=Icon))
    monkeypatch.setenv("PYSTRAY_BACKEND", "win32")
    assert selftest.check_tray() == (
        "pass",
        "backend pystray._win32 (forced by PYSTRAY_BACKEND=win32)",
    )
    ((name, image, title),) = built
    assert (name, title, image.size[0] > 0) == ("telex-start", "Telex Start", True)


def test_a_tray_icon_that_cannot_be_built_fails(monkeypatch):
    class Icon:
        def __init__(self, *args: Any) -> None:
            raise OSError("RegisterClassEx failed")

    monkeypatch.setitem(sys.modules, "pystray", types.SimpleNamespace(Icon=Icon))
    monkeypatch.setenv("PYSTRAY_BACKEND", "win32")
    result = selftest._run_check("tray", selftest.check_tray)
    assert (result.status, result.detail) == ("fail", "OSError: RegisterClassEx failed")


def test_the_optional_fallbacks_are_in_the_report(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(
        selftest.OPTIONAL_NOTIFIER_MODULES, "win32", ("json", "json.decoder", "no_such_fallback")
    )
    monkeypatch.setattr(selftest, "check_tray", lambda: ("pass", "stub"))
    monkeypatch.setattr(selftest, "check_tk", lambda: ("pass", "stub"))
    monkeypatch.setattr(selftest, "check_notifiers", lambda: ("pass", "stub"))
    monkeypatch.setattr(selftest, "check_tls_handshake", lambda *_: ("skip", "offline"))

    _, report = run_self_test(settings_in(tmp_path))

    assert report["optional_fallbacks"] == {"json": "imported", "no_such_fallback": "not installed"}


@pytest.mark.parametrize(
    ("platform_name", "names"), [("win32", {"win10toast_click"}), ("darwin", {"pyobjus"})]
)
def test_each_oss_fallback_is_named(monkeypatch, platform_name, names):
    monkeypatch.setattr(sys, "platform", platform_name)
    assert set(selftest.optional_fallbacks()) == names
