"""Fixtures of the desktop app as a subprocess (the desktop suite, and the end-to-end suite for
clicks): a stand-in for the Telex main app, a private runtime folder, the app's environment and
``launch_app``. A plugin of the top ``tests/conftest.py`` (``pytest_plugins``), so no suite has
to import another's ``conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.desktop_app import (
    AuditedApp,
    FakeMainApp,
    LaunchApp,
    kill_fake_main_apps,
    make_fake_main_app,
)


@pytest.fixture
def fake_main_app(tmp_path: Path) -> Iterator[FakeMainApp]:
    fake = make_fake_main_app(tmp_path / "telex-app")
    yield fake
    kill_fake_main_apps(fake)


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR: the single-instance lock and socket of this test's apps
    (short, as Unix socket paths must be)."""
    folder = Path(tempfile.mkdtemp(prefix="xdg-run-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def app_env(tmp_path: Path, fake_main_app: FakeMainApp, runtime_dir: Path) -> dict[str, str]:
    """The environment of the apps of one test: config, logs, runtime and autostart folders in
    the test's own space, the stand-in main app, no TELEX_* leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEX_")}
    env.update(
        PYTHONUNBUFFERED="1",
        TELEX_CONFIG_DIR=str(tmp_path / "config"),
        TELEX_LOG_DIR=str(tmp_path / "logs"),
        TELEX_MAIN_APP=str(fake_main_app.executable),
        XDG_RUNTIME_DIR=str(runtime_dir),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
    )
    return env


@pytest.fixture
def launch_app(app_env: dict[str, str]) -> Iterator[LaunchApp]:
    """Start the desktop app; ``backend`` picks pystray's backend (``None``: pystray's choice),
    ``env`` adds to the test's environment."""
    started: list[AuditedApp] = []

    def launch(
        *args: str, backend: str | None = "xorg", env: dict[str, str] | None = None
    ) -> AuditedApp:
        full = dict(app_env)
        if backend is not None:
            full["PYSTRAY_BACKEND"] = backend
        else:
            full.pop("PYSTRAY_BACKEND", None)
        full.update(env or {})
        app = AuditedApp(list(args), full)
        started.append(app)
        return app

    yield launch
    for app in started:
        app.stop()
