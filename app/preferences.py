"""Per-user preferences: the ``"preferences"`` object of ``<config dir>/config.json``.

The same file holds the ``"settings"`` object that :mod:`app.config` reads; this module leaves it
(and any key it does not know) exactly as it found it. Only harmless things live here — the
last email address, where the user showed us the main app, whether the menu window was
introduced — never a password or a token (docs/ARCHITECTURE.md, "Security rules"). A damaged
file never stops the app: it is logged and the defaults are used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.config import CONFIG_FILE_NAME, read_config_document
from app.errors import ConfigError
from app.models import Quiet

logger = logging.getLogger(__name__)

SECTION = "preferences"
#: Keys this version writes only when they differ from the default: absent means removed.
OPTIONAL_KEYS = (
    "main_app",
    "menu_window_introduced",
    "check_for_updates",
    "notifications_paused",
    "notifications_paused_until",
    "muted_organisations",
    "open_in_desktop_app",
)


@dataclass(frozen=True)
class Preferences:
    last_email: str | None = None
    main_app: Path | None = None  # chosen in the "Telex not found" dialog
    menu_window_introduced: bool = False  # shown once where the tray has no menu
    quiet: Quiet = field(default_factory=Quiet)  # paused notifications, muted organisations
    check_for_updates: bool = True  # the once-a-day look for a newer release (app.core.updates)
    # A click starts or brings forward the desktop client instead of opening the web link.
    open_in_desktop_app: bool = False

    @classmethod
    def from_json(cls, data: object) -> Preferences:
        """Whatever is usable in ``data``; unusable values fall back to their default."""
        if not isinstance(data, dict):
            return cls()
        email = data.get("last_email")
        main_app = data.get("main_app")
        introduced = data.get("menu_window_introduced")
        return cls(
            last_email=email if isinstance(email, str) and email else None,
            main_app=Path(main_app) if isinstance(main_app, str) and main_app else None,
            menu_window_introduced=introduced is True,
            quiet=_quiet_from_json(data),
            check_for_updates=data.get("check_for_updates") is not False,
            open_in_desktop_app=data.get("open_in_desktop_app") is True,
        )

    def to_json(self) -> dict[str, Any]:
        """Only what differs from the defaults, so the file stays short and readable."""
        document: dict[str, Any] = {"last_email": self.last_email}
        if self.main_app is not None:
            document["main_app"] = str(self.main_app)
        if self.menu_window_introduced:
            document["menu_window_introduced"] = True
        if not self.check_for_updates:
            document["check_for_updates"] = False
        if self.open_in_desktop_app:
            document["open_in_desktop_app"] = True
        quiet = self.quiet
        if quiet.paused:
            document["notifications_paused"] = True
            if quiet.until is not None:
                document["notifications_paused_until"] = quiet.until.isoformat()
        if quiet.muted:
            document["muted_organisations"] = sorted(quiet.muted)
        return document


def _quiet_from_json(data: dict[str, Any]) -> Quiet:
    """A pause whose end is not a usable time is dropped (better one notification too many
    than silence forever); organisation ids that are not text are skipped."""
    muted = data.get("muted_organisations")
    ids = frozenset(
        item for item in (muted if isinstance(muted, list) else []) if isinstance(item, str)
    )
    paused = data.get("notifications_paused") is True
    until_text = data.get("notifications_paused_until")
    until: datetime | None = None
    if paused and until_text is not None:
        try:
            until = datetime.fromisoformat(until_text) if isinstance(until_text, str) else None
        except ValueError:
            until = None
        if until is None or until.tzinfo is None:
            logger.warning("Ignoring a stored pause with an unusable end: %r", until_text)
            paused, until = False, None
    return Quiet(paused=paused, until=until, muted=ids)


class PreferencesStore:
    """Reads and atomically rewrites the preferences in the shared config file."""

    def __init__(self, config_dir: Path, document: Mapping[str, Any] | None = None) -> None:
        """``document``: the config file as start-up already read it (``config.load_config``),
        so that it is read once: one store is handed to whoever needs the preferences."""
        self.path = config_dir / CONFIG_FILE_NAME
        self._loaded: Preferences | None = None
        if document is not None:
            self._loaded = Preferences.from_json(document.get(SECTION))

    def load(self) -> Preferences:
        """The preferences: read from the file the first time, then as last loaded or saved
        (this process is the file's only writer)."""
        if self._loaded is None:
            document = self._read()
            self._loaded = (
                Preferences.from_json(document.get(SECTION)) if document else Preferences()
            )
        return self._loaded

    def save(self, preferences: Preferences) -> bool:
        """Write ``preferences``; False (and a log line) when the file cannot be written or is
        too damaged to rewrite without losing the user's settings."""
        document = self._read()
        if document is None:
            logger.warning("Not saving preferences: %s cannot be read back safely", self.path)
            return False
        section = document.get(SECTION)
        merged = dict(section) if isinstance(section, dict) else {}
        for key in OPTIONAL_KEYS:  # a resumed pause, an organisation no longer muted
            merged.pop(key, None)
        merged.update(preferences.to_json())
        document[SECTION] = merged
        try:
            self._write(document)
        except OSError as exc:
            logger.warning("Cannot save preferences to %s: %s", self.path, exc.strerror or exc)
            return False
        self._loaded = preferences
        return True

    def _read(self) -> dict[str, Any] | None:
        """The whole document: {} when there is no file yet, None when it is unusable."""
        try:
            return read_config_document(self.path)
        except ConfigError as exc:
            logger.warning("%s; using default preferences", str(exc).rstrip("."))
            return None

    def _write(self, document: dict[str, Any]) -> None:
        """Temp file in the same folder + ``os.replace``: a crash leaves the old file or the
        new one, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                # ASCII escapes: a lone surrogate read from a damaged file still writes back
                json.dump(document, handle, indent=2, ensure_ascii=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
