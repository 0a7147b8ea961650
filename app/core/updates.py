"""Update check: about once a day, look up the newest release and offer it when it is newer.

No personal data leaves the machine: the check is an anonymous GET of a public JSON document
(the GitHub "latest release" API of :data:`RELEASES_URL`), with no account, no identifier and no
cookie, only the ``telex-start/<version>`` User-Agent every request of the app carries. A failed
check is never shown to the user; it is logged and tried again a few hours later.

The schedule runs on wall-clock time kept in a small state file, and is re-checked every
:data:`POLL_INTERVAL`: a laptop that sleeps through the night does not advance ``asyncio``'s
monotonic clock, so one long sleep would check far less often than daily. The state file also
remembers the newest release found, so an update stays on offer after a restart without asking
the network again.

The desktop app runs :meth:`UpdateChecker.run` on the loop thread (``app.ui.desktop.Core``) and
offers what it finds in the tray menu; the user can switch the check off there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from packaging.version import InvalidVersion, Version
from yarl import URL

from app import __version__
from app.config import check_secure_url
from app.constants import RELEASES_URL
from app.errors import UpdateCheckError

if TYPE_CHECKING:
    from app.config import Settings

logger = logging.getLogger(__name__)

CHECK_INTERVAL: Final = 24 * 3600.0
RETRY_INTERVAL: Final = 4 * 3600.0  # after a failed check
POLL_INTERVAL: Final = 3600.0
FIRST_CHECK_DELAY: Final = 60.0  # sign-in gets the network first
REQUEST_TIMEOUT: Final = 20.0
MAX_RESPONSE_BYTES: Final = 1 << 20
STATE_FILE_NAME: Final = "update-check.json"

SessionFactory = Callable[[], aiohttp.ClientSession]


MAX_TAG_LENGTH: Final = 64


@dataclass(frozen=True)
class Release:
    version: Version
    tag: str
    url: str  # the release page, for a browser

    def to_json(self) -> dict[str, str]:
        return {"tag": self.tag, "url": self.url}

    @classmethod
    def from_fields(cls, tag: object, url: object, pages: str) -> Release:
        """``pages`` is where release pages may be (:func:`release_pages`): the offer is opened
        in the user's browser, so no other address is ever offered."""
        if not isinstance(tag, str) or not isinstance(url, str):
            raise UpdateCheckError("the release has no tag name or page URL")
        if len(tag) > MAX_TAG_LENGTH:
            raise UpdateCheckError(f"the release tag is implausibly long ({len(tag)} characters)")
        check_release_page(url, pages)
        try:
            version = Version(tag)  # accepts the usual "v" prefix of tags
        except (InvalidVersion, ValueError):  # ValueError: an int of too many digits
            raise UpdateCheckError(f"the release tag {tag!r} is not a version") from None
        return cls(version, tag, url)


def release_pages(update_url: str) -> str:
    """Where the release pages of ``update_url``'s project are: for the GitHub API's
    ``/repos/OWNER/REPO/…`` that is ``https://github.com/OWNER/REPO/releases/``; any other
    update server (a mirror, a test server) publishes the product's own GitHub releases."""
    parts = URL(update_url).parts
    owner, repo = URL(RELEASES_URL).parts[2:4]
    if URL(update_url).host == "api.github.com" and len(parts) > 3 and parts[1] == "repos":
        owner, repo = parts[2:4]
    return f"https://github.com/{owner}/{repo}/releases/"


def check_release_page(url: str, pages: str) -> None:
    """``url`` must be a page below ``pages``, read with the parser the browser's URL goes
    through here: https, github.com itself (no user info such as ``github.com@evil``, no
    other port), and a path that stays below the project's releases."""
    try:
        page = URL(url)
        allowed = URL(pages)
        inside = (
            page.scheme == "https"
            and page.raw_user is None
            and page.raw_password is None
            and page.host == allowed.host
            and page.explicit_port in (None, 443)
            and "\\" not in url
            and ".." not in page.raw_parts
            and page.path.startswith(allowed.path)
        )
    except (ValueError, TypeError):
        inside = False
    if not inside:
        raise UpdateCheckError(f"the release page {url[:200]!r} is not one of {pages}")


@dataclass(frozen=True)
class UpdateCheck:
    """What one check found: ``latest`` is None when it failed, and ``error`` says why."""

    current: Version
    latest: Release | None
    error: str | None = None

    @property
    def update(self) -> Release | None:
        """The release to offer the user, or None (up to date, or the check failed)."""
        return newer_release(self.latest, self.current)


def newer_release(release: Release | None, current: Version) -> Release | None:
    return release if release is not None and release.version > current else None


async def fetch_latest_release(session: aiohttp.ClientSession, url: str) -> Release:
    """The newest published release at ``url`` (a GitHub ``releases/latest`` endpoint), whose
    page is one of :func:`release_pages`."""
    headers = {"Accept": "application/vnd.github+json"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    try:
        async with session.get(url, headers=headers, timeout=timeout) as response:
            if response.status == 404:
                raise UpdateCheckError("no release has been published yet")
            if response.status != 200:
                raise UpdateCheckError(f"the release server answered HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise UpdateCheckError("the release document is implausibly large")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise UpdateCheckError(f"the release server cannot be reached: {exc!r}") from exc
    try:
        document = json.loads(body)
    except ValueError:
        raise UpdateCheckError("the release document is not JSON") from None
    except RecursionError:  # not a ValueError: it would escape the checker
        raise UpdateCheckError("the release document is nested too deeply") from None
    if not isinstance(document, dict):
        raise UpdateCheckError("the release document is not a JSON object")
    if document.get("draft") or document.get("prerelease"):
        raise UpdateCheckError("the newest release is a draft or a pre-release")
    return Release.from_fields(
        document.get("tag_name"), document.get("html_url"), release_pages(url)
    )


class UpdateChecker:
    """Checks at most once per :data:`CHECK_INTERVAL` across restarts; checking never raises.

    The constructor raises :class:`~app.errors.ConfigError` for a URL that is not https://
    (plain http:// is accepted towards this machine only, for tests).
    """

    def __init__(
        self,
        *,
        state_file: Path,
        session_factory: SessionFactory,
        url: str = RELEASES_URL,
        current_version: str = __version__,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = check_secure_url("Update URL", url, "https", "http")
        self.pages = release_pages(self.url)
        self.current = Version(current_version)
        self._state_file = state_file
        self._session_factory = session_factory
        self._clock = clock

    @classmethod
    def for_settings(cls, settings: Settings) -> UpdateChecker:
        """The checker the app uses: its URL, TLS rules and proxy settings; state in the config
        dir."""
        from app.core.net import http_session, ssl_context

        context = ssl_context(settings)
        return cls(
            state_file=settings.config_dir / STATE_FILE_NAME,
            session_factory=lambda: http_session(
                settings, context, proxy_for=(settings.update_url,)
            ),
            url=settings.update_url,
        )

    def remembered(self) -> Release | None:
        """A newer release found by an earlier check (possibly in an earlier run), if any."""
        latest = self._read_state().get("latest")
        if not isinstance(latest, dict):
            return None
        try:
            release = Release.from_fields(latest.get("tag"), latest.get("url"), self.pages)
        except UpdateCheckError:
            return None
        return newer_release(release, self.current)

    def due(self) -> bool:
        next_check = self._read_state().get("next_check")
        if not isinstance(next_check, int | float):
            return True
        now = self._clock()
        # A clock set back (or a state file from the future) must not postpone checks for long.
        return now >= next_check or next_check - now > CHECK_INTERVAL

    async def check(self) -> UpdateCheck:
        """Look up the newest release now and schedule the next check."""
        try:
            async with self._session_factory() as session:
                latest = await fetch_latest_release(session, self.url)
        except Exception as exc:  # checking never raises: a bug here must not end the task
            if not isinstance(exc, UpdateCheckError):
                logger.warning("Update check failed unexpectedly", exc_info=True)
            logger.info("Update check failed: %s", exc)
            self._write_state(next_check=self._clock() + RETRY_INTERVAL, latest=None)
            return UpdateCheck(self.current, None, str(exc))
        result = UpdateCheck(self.current, latest)
        if result.update is not None:
            logger.info("Update available: %s (running %s)", latest.version, self.current)
        else:
            logger.debug("Up to date (%s; newest release %s)", self.current, latest.version)
        self._write_state(next_check=self._clock() + CHECK_INTERVAL, latest=latest)
        return result

    async def run(
        self,
        on_update: Callable[[Release], None],
        *,
        enabled: Callable[[], bool] = lambda: True,
        first_delay: float = FIRST_CHECK_DELAY,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        """Check whenever due, until cancelled; ``on_update`` gets each newer release found.

        ``enabled`` is asked before every check, so the user's choice applies without a
        restart; while it says no, nothing is sent anywhere and nothing is offered.
        """
        if enabled() and (remembered := self.remembered()) is not None:
            on_update(remembered)
        await asyncio.sleep(first_delay)
        while True:
            if enabled() and self.due():
                result = await self.check()
                if result.update is not None:
                    on_update(result.update)
            await asyncio.sleep(poll_interval)

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            logger.debug("Ignoring the update state %s: %r", self._state_file, exc)
            return {}
        return state if isinstance(state, dict) else {}

    def _write_state(self, *, next_check: float, latest: Release | None) -> None:
        """Atomically. After a failed check, the release found before stays on offer."""
        state: dict[str, Any] = {"next_check": next_check}
        if latest is not None:
            state["latest"] = latest.to_json()
        elif isinstance(previous := self._read_state().get("latest"), dict):
            state["latest"] = previous
        tmp: str | None = None
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._state_file.parent, prefix=".update-check-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle)
            os.replace(tmp, self._state_file)
        except OSError as exc:
            logger.debug("Cannot save the update state %s: %s", self._state_file, exc)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
