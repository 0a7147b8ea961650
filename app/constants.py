"""Names, default endpoints and resource paths; no third-party imports so every layer can use it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

APP_NAME: Final = "Telex Start"
APP_SLUG: Final = "telex-start"
APP_AUTHOR: Final = "Telex"
APP_ID: Final = "im.telex.start"  # macOS bundle id (Windows toasts use APP_NAME as AppUserModelID)
CLIENT_NAME: Final = "telex-start"  # sent to Centrifugo in connect

#: Per environment: the REST API, the push WebSocket and the web app's origin (where a clicked
#: notification's permalink opens; the Telex web origin is inferred, not confirmed: setting
#: ``web_url``).
ENVIRONMENTS: Final = {
    "production": (
        "https://api.telex.im/api/v1",
        "wss://api.telex.im/centrifugo/connection/websocket",
        "https://telex.im",
    ),
    "staging": (
        "https://api.staging.telex.im/api/v1",
        "wss://api.staging.telex.im/centrifugo/connection/websocket",
        "https://staging.telex.im",
    ),
}

#: Where the update check finds the newest release (GitHub's "latest release" API). The public
#: repository is not settled yet: this is the place to change it (setting ``update_url``).
RELEASES_URL: Final = "https://api.github.com/repos/telex-im/telex-start/releases/latest"

FROZEN: Final = bool(getattr(sys, "frozen", False))


def resource_path(*parts: str) -> Path:
    """Locate bundled files both from source and inside a PyInstaller build."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))
    return base.joinpath(*parts)
