"""Update check against a local release server: what is offered, when it asks, how it fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from packaging.version import Version

from app import __version__
from app.config import load_settings
from app.core import updates
from app.core.updates import (
    CHECK_INTERVAL,
    RETRY_INTERVAL,
    STATE_FILE_NAME,
    Release,
    UpdateChecker,
)
from app.errors import ConfigError

PAGE = "https://github.com/telex-im/telex-start/releases/tag/v9.0.0"


def release_json(tag: str = "v9.0.0", **extra: Any) -> dict[str, Any]:
    return {"tag_name": tag, "html_url": PAGE, "draft": False, "prerelease": False, **extra}


@dataclass
class ReleaseServer:
    """Answers GET /latest with ``response``; records each request's headers."""

    server: TestServer
    status: int = 200
    payload: str | None = None
    delay: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/latest"))

    def answer(self, status: int = 200, body: Any = None, *, text: str | None = None) -> None:
        self.status = status
        self.payload = text if text is not None else json.dumps(body)


@pytest.fixture
async def release_server() -> AsyncIterator[ReleaseServer]:
    app = web.Application()
    state: ReleaseServer

    async def latest(request: web.Request) -> web.StreamResponse:
        state.requests.append(dict(request.headers))
        if state.delay:
            await asyncio.sleep(state.delay)
        assert state.payload is not None, "the test did not say what to answer"
        return web.Response(
            status=state.status, text=state.payload, content_type="application/json"
        )

    app.router.add_get("/latest", latest)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state = ReleaseServer(server)
    yield state
    await server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def make_checker(
    tmp_path: Path, server: ReleaseServer, clock: Clock | None = None, current: str = "1.0.0"
) -> UpdateChecker:
    return UpdateChecker(
        state_file=tmp_path / "config" / STATE_FILE_NAME,
        session_factory=aiohttp.ClientSession,
        url=server.url,
        current_version=current,
        clock=clock or Clock(),
    )


async def test_a_newer_release_is_offered_and_remembered(tmp_path, release_server):
    release_server.answer(body=release_json("v9.0.0"))
    checker = make_checker(tmp_path, release_server)

    result = await checker.check()

    assert result.update == Release(Version("9.0.0"), "v9.0.0", PAGE)
    assert result.error is None
    # a restart offers it again without asking the server
    again = make_checker(tmp_path, release_server)
    assert again.remembered() == result.update
    assert len(release_server.requests) == 1


@pytest.mark.parametrize("tag", ["v1.0.0", "1.0.0", "v0.9.5", "v1.0.0rc1"])
async def test_the_same_or_an_older_release_is_not_offered(tmp_path, release_server, tag):
    release_server.answer(body=release_json(tag))
    checker = make_checker(tmp_path, release_server, current="1.0.0")

    result = await checker.check()

    assert result.error is None
    assert result.latest is not None
    assert result.update is None
    assert checker.remembered() is None


async def test_the_request_carries_nothing_personal(tmp_path, release_server):
    release_server.answer(body=release_json())
    settings = load_settings(
        {"config_dir": str(tmp_path), "update_url": release_server.url}, environ={}
    )
    checker = UpdateChecker.for_settings(settings)

    await checker.check()

    (headers,) = release_server.requests
    assert headers["User-Agent"] == f"telex-start/{__version__}"
    assert not {"Authorization", "Cookie", "X-Notification-Token"} & set(headers)
    assert (tmp_path / STATE_FILE_NAME).is_file()


async def test_checks_at_most_once_a_day(tmp_path, release_server):
    release_server.answer(body=release_json())
    clock = Clock()
    checker = make_checker(tmp_path, release_server, clock)
    assert checker.due()

    await checker.check()
    assert not checker.due()
    clock.now += CHECK_INTERVAL - 60
    assert not make_checker(tmp_path, release_server, clock).due()  # also after a restart
    clock.now += 60
    assert checker.due()


async def test_a_clock_set_back_does_not_postpone_checks(tmp_path, release_server):
    release_server.answer(body=release_json())
    clock = Clock()
    checker = make_checker(tmp_path, release_server, clock)
    await checker.check()

    clock.now -= 30 * 24 * 3600  # the state file now says "next check in a month"

    assert checker.due()


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/telex-start-99-setup.exe",
        "https://github.com@evil.example/telex-im/telex-start/releases/tag/v9.0.0",
        "https://github.com/telex-im/telex-start/releases/../../../evil/x",
    ],
)
def test_a_remembered_offer_of_another_page_is_dropped(tmp_path, release_server, url):
    state = tmp_path / "config" / STATE_FILE_NAME
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"next_check": 0, "latest": {"tag": "v99", "url": url}}))
    assert make_checker(tmp_path, release_server).remembered() is None


def test_release_pages_follow_the_github_repository_of_the_update_url():
    assert updates.release_pages("https://api.github.com/repos/acme/tool/releases/latest") == (
        "https://github.com/acme/tool/releases/"
    )
    # any other update server offers the product's own releases
    assert updates.release_pages("https://mirror.example/latest") == (
        "https://github.com/telex-im/telex-start/releases/"
    )


async def test_an_unexpected_error_fails_the_check_instead_of_ending_it(
    tmp_path, release_server, monkeypatch
):
    release_server.answer(body=release_json())

    def broken(*args: object) -> Release:
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    monkeypatch.setattr(Release, "from_fields", broken)
    result = await make_checker(tmp_path, release_server).check()
    assert result.latest is None
    assert result.error is not None
    assert "4300 digits" in result.error


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((404, {"message": "Not Found"}), "no release has been published"),
        ((403, {"message": "API rate limit exceeded"}), "HTTP 403"),
        ((502, ""), "HTTP 502"),
        ((200, "not json"), "not JSON"),
        ((200, ["v9.0.0"]), "not a JSON object"),
        ((200, {"html_url": PAGE}), "no tag name"),
        ((200, release_json("nightly")), "not a version"),
        ((200, release_json(html_url="javascript:alert(1)")), "is not one of"),
        ((200, release_json("v" + "9" * 5000)), "implausibly long"),
        ((200, release_json(html_url="https://evil.example/telex-start-99-setup.exe")), "not one"),
        ((200, release_json(html_url="https://github.com@evil.example/x")), "is not one of"),
        ((200, release_json(html_url="https://github.com:8443" + PAGE[18:])), "is not one of"),
        ((200, release_json(html_url="https://github.com/evil/telex-start/releases/")), "not one"),
        ((200, release_json(html_url=PAGE + "/../../../../evil/x")), "is not one of"),
        ((200, release_json(prerelease=True)), "pre-release"),
        ((200, release_json(draft=True)), "draft"),
    ],
)
async def test_a_failed_check_is_quiet_and_retried_later(
    tmp_path, release_server, caplog, answer, reason
):
    status, body = answer
    if isinstance(body, str):
        release_server.answer(status, text=body)
    else:
        release_server.answer(status, body)
    clock = Clock()
    checker = make_checker(tmp_path, release_server, clock)

    with caplog.at_level("DEBUG", logger="app.core.updates"):
        result = await checker.check()

    assert result.latest is None
    assert result.update is None
    assert result.error is not None
    assert reason in result.error
    assert all(r.levelname in ("DEBUG", "INFO") for r in caplog.records)
    assert not checker.due()
    clock.now += RETRY_INTERVAL
    assert checker.due()


async def test_a_failure_keeps_the_release_found_before_on_offer(tmp_path, release_server):
    release_server.answer(body=release_json("v9.0.0"))
    clock = Clock()
    checker = make_checker(tmp_path, release_server, clock)
    found = (await checker.check()).update
    assert found is not None

    release_server.answer(500, "")
    clock.now += CHECK_INTERVAL
    assert (await checker.check()).error is not None

    assert checker.remembered() == found


async def test_an_oversized_answer_is_refused(tmp_path, release_server, monkeypatch):
    monkeypatch.setattr(updates, "MAX_RESPONSE_BYTES", 1000)
    release_server.answer(body=release_json(body="x" * 5000))

    result = await make_checker(tmp_path, release_server).check()

    assert result.error is not None
    assert "implausibly large" in result.error


async def test_a_server_that_does_not_answer_times_out(tmp_path, release_server, monkeypatch):
    monkeypatch.setattr(updates, "REQUEST_TIMEOUT", 0.2)
    release_server.answer(body=release_json())
    release_server.delay = 5

    async with asyncio.timeout(3):
        result = await make_checker(tmp_path, release_server).check()

    assert result.error is not None
    assert "cannot be reached" in result.error


async def test_an_unreachable_server_is_a_quiet_failure(tmp_path, release_server):
    checker = make_checker(tmp_path, release_server)
    await release_server.server.close()

    result = await checker.check()

    assert result.error is not None
    assert "cannot be reached" in result.error


async def test_a_damaged_state_file_means_check_now(tmp_path, release_server):
    checker = make_checker(tmp_path, release_server)
    state = tmp_path / "config" / STATE_FILE_NAME
    state.parent.mkdir()
    state.write_text('{"next_check": "tomorrow", "latest": {"tag": "v9", "url": "http://x"}')

    assert checker.due()
    assert checker.remembered() is None


def test_only_https_or_this_machine(tmp_path):
    with pytest.raises(ConfigError, match="only https:// is allowed"):
        UpdateChecker(
            state_file=tmp_path / "s.json",
            session_factory=aiohttp.ClientSession,
            url="http://releases.example.com/latest",
        )


async def test_run_offers_the_remembered_release_then_checks_when_due(tmp_path, release_server):
    release_server.answer(body=release_json("v9.0.0"))
    clock = Clock()
    await make_checker(tmp_path, release_server, clock).check()  # an earlier run found 9.0.0
    release_server.answer(body=release_json("v9.1.0"))
    offered: list[str] = []
    checker = make_checker(tmp_path, release_server, clock)

    task = asyncio.create_task(
        checker.run(lambda r: offered.append(r.tag), first_delay=0, poll_interval=0.01)
    )
    await asyncio.sleep(0.2)
    assert offered == ["v9.0.0"]  # remembered, and not due yet: no request
    assert len(release_server.requests) == 1
    clock.now += CHECK_INTERVAL
    async with asyncio.timeout(5):
        while offered[-1] != "v9.1.0":
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(release_server.requests) == 2


async def test_run_does_nothing_while_disabled(tmp_path, release_server):
    release_server.answer(body=release_json("v9.0.0"))
    clock = Clock()
    await make_checker(tmp_path, release_server, clock).check()
    clock.now += 2 * CHECK_INTERVAL
    offered: list[Release] = []
    allowed = False
    checker = make_checker(tmp_path, release_server, clock)

    task = asyncio.create_task(
        checker.run(offered.append, enabled=lambda: allowed, first_delay=0, poll_interval=0.01)
    )
    await asyncio.sleep(0.2)
    assert offered == []
    assert len(release_server.requests) == 1  # only the earlier check
    allowed = True
    async with asyncio.timeout(5):
        while not offered:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(release_server.requests) == 2
