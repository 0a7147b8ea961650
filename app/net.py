"""The one place settings become an aiohttp session: TLS always verified, extra CAs added."""

from __future__ import annotations

import ssl

import aiohttp

from app import __version__
from app.config import Settings
from app.constants import APP_SLUG


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """System trust plus ``--ca-file``; there is deliberately no way to turn verification off."""
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    return context


def http_session(settings: Settings, context: ssl.SSLContext) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=settings.max_requests_in_flight * 2),
        headers={"User-Agent": f"{APP_SLUG}/{__version__}"},
        trust_env=True,
    )
