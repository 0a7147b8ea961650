"""Tray and window images, loaded once from ``icons/`` (made by ``build/make_icons.py``)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from PIL import Image

from app.constants import resource_path
from app.ui.menu import IconKind

logger = logging.getLogger(__name__)

APP_ICON_FILE = "telex-start.png"
_FALLBACK_COLOUR = (124, 58, 237, 255)  # Telex purple


def app_icon_path() -> Path:
    return resource_path("icons", APP_ICON_FILE)


@functools.cache
def tray_image(kind: IconKind) -> Image.Image:
    """The tray image for ``kind``; a plain purple square if the file is missing or broken, so
    a damaged install still has a clickable icon."""
    path = resource_path("icons", f"tray-{kind.value}.png")
    try:
        with Image.open(path) as image:
            return image.convert("RGBA")
    except (OSError, ValueError) as exc:
        logger.warning("Cannot load the tray image %s: %s", path, exc)
        return Image.new("RGBA", (64, 64), _FALLBACK_COLOUR)
