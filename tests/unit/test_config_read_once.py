"""``config.json`` is read once at start: the settings and the preferences come from the same
read, and one preferences store is handed to the service (its stored pause) and the desktop
(the main app the user showed us, the other wishes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from app import cli
from app.config import CONFIG_FILE_NAME
from app.core.runtime import Runtime
from app.preferences import PreferencesStore
from app.system import single_instance


def test_the_desktop_start_reads_the_config_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / CONFIG_FILE_NAME
    main_app = tmp_path / "telex"
    config.write_text(
        json.dumps(
            {
                "settings": {"notifier": "log"},
                "preferences": {"notifications_paused": True, "main_app": str(main_app)},
            }
        ),
        encoding="utf-8",
    )
    reads: list[Path] = []
    read_text = Path.read_text

    def counting(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.name == CONFIG_FILE_NAME:
            reads.append(self)
        return read_text(self, *args, **kwargs)

    seen: dict[str, object] = {}

    def run_desktop(
        settings: object, make_runtime: Any, *, preferences: PreferencesStore, instance: object
    ) -> int:
        """What ``app.ui.run`` does with them: the runtime started on the loop, then the
        store's preferences for ``MainApp`` and for ``DesktopApp``."""
        runtime: Runtime = make_runtime(lambda _event: None)

        async def start() -> None:
            await runtime.start()
            seen["quiet"] = runtime._started().quiet
            await runtime.aclose()

        asyncio.run(start())
        seen["main_app"] = preferences.load().main_app
        seen["paused"] = preferences.load().quiet.paused
        return 0

    monkeypatch.setenv("TELEX_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("TELEX_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "disable_core_dumps", lambda: None)
    monkeypatch.setattr(cli, "setup_logging", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(single_instance, "claim", lambda: contextlib.nullcontext(object()))
    monkeypatch.setattr("app.ui.run.run_desktop", run_desktop)
    monkeypatch.setattr(Path, "read_text", counting)

    assert cli.main([]) == 0

    assert getattr(seen["quiet"], "paused", None) is True, "the service starts paused"
    assert seen["main_app"] == main_app
    assert seen["paused"] is True
    assert reads == [config], "config.json is read once at start"
