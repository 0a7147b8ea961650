"""Root fixtures and hooks for the whole suite (keep small; area-specific fixtures live nearer).

* ``centrifugo_bin`` — the real Centrifugo binary (skip if missing; FAIL when ``CI=true``).
* ``centrifugo`` — async factory: ``inst = await centrifugo(allow_subscribe_for_client=False,
  ping_interval=2, pong_timeout=1)`` → a running :class:`CentrifugoInstance`, stopped after the
  test; its log is copied to ``artifacts/`` when the test fails.
* ``artifacts`` — the artifacts directory (``$ARTIFACTS`` or ``<repo>/artifacts``).
* ``notifications`` — a D-Bus monitor view of ``Notify`` calls made during the test (desktop).
* Markers ``desktop`` / ``centrifugo``: skipped with a reason when the part is missing; in CI any
  skip of such a test is turned into a failure, so they cannot silently vanish.
* Marker ``subprocess`` (the test starts a process): every test of a suite in
  ``SUBPROCESS_SUITES``, every test using a fixture in ``SUBPROCESS_FIXTURES``, and the few tests
  in the fast folders (tests/unit, tests/ui) that start one themselves, marked by hand. So
  ``pytest -m "not subprocess" tests/unit tests/ui`` is the fast inner loop.
* On failure, a screenshot of the X screen goes to ``artifacts/FAILED-<test>.png`` when
  ``DISPLAY`` is set.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support.centrifugo import (
    CENTRIFUGO_VERSION,
    DEFAULT_API_KEY,
    DEFAULT_HMAC_SECRET,
    CentrifugoFactory,
    CentrifugoInstance,
    centrifugo_module_version,
    find_centrifugo,
    run_centrifugo,
)
from tests.support.desktop import (
    NotificationView,
    artifacts_dir,
    desktop_unavailable_reason,
    dunst_reset,
    in_ci,
    screenshot,
    session_recorder,
    stop_session_recorder,
)

#: Fixtures shared by several suites, registered here so no suite imports another's conftest.
pytest_plugins = ["tests.support.desktop_fixtures"]

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_TESTS = Path(__file__).resolve().parent
#: Suites (folders of tests/) built on processes: the app, Centrifugo, dbus-daemon and dunst,
#: Node.js, the frozen build. Every test in them is marked ``subprocess``.
SUBPROCESS_SUITES = frozenset(
    {
        "conformance",
        "desktop",
        "e2e",
        "integration",
        "notify",
        "packaging",
        "resilience",
        "security",
    }
)
#: Shared fixtures that start a process (or hand out something that does), wherever used.
SUBPROCESS_FIXTURES = frozenset(
    {"centrifugo", "centrifugo_bin", "notifications", "launch_app", "private_bus"}
)
_STRICT_MARKERS = ("desktop", "centrifugo")


def _unavailable(reason: str) -> NoReturn:
    """Skip — or, in CI, fail: a missing part must not make tests silently disappear."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this must not be skipped)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _centrifugo_problem() -> tuple[Path | None, str | None]:
    binary = find_centrifugo()
    if binary is None:
        return None, (
            "Centrifugo binary not found (CENTRIFUGO_BIN, $(go env GOPATH)/bin, PATH); "
            "`bash tests/run.sh` installs it"
        )
    version = centrifugo_module_version(binary)
    if version is not None and version != CENTRIFUGO_VERSION:
        return None, f"{binary} is Centrifugo {version}, the tests need {CENTRIFUGO_VERSION}"
    return binary, None


def _suite(item: pytest.Item) -> str | None:
    """The folder of tests/ the test is in (``None`` for a file right in tests/ or outside)."""
    try:
        parts = item.path.resolve().relative_to(_TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using the real-part fixtures get their marker (so ``-m "not centrifugo"`` works);
    tests that start processes get ``subprocess``."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if _suite(item) in SUBPROCESS_SUITES or SUBPROCESS_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.subprocess)
        if "centrifugo" in names or "centrifugo_bin" in names:
            item.add_marker(pytest.mark.centrifugo)
        if "notifications" in names:
            item.add_marker(pytest.mark.desktop)


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_session_recorder()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("desktop") is not None:
        reason = desktop_unavailable_reason()
        if reason is not None:
            _unavailable(f"desktop test: {reason}")
    if item.get_closest_marker("centrifugo") is not None:
        _, problem = _centrifugo_problem()
        if problem is not None:
            _unavailable(problem)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    item.stash.setdefault(_REPORTS, {})[rep.when] = rep
    if (
        rep.skipped
        and in_ci()
        and not hasattr(rep, "wasxfail")
        and any(item.get_closest_marker(m) is not None for m in _STRICT_MARKERS)
    ):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped on CI, which counts as a failure for this test: {reason}"
    if rep.failed and rep.when in ("setup", "call"):
        with contextlib.suppress(Exception):
            shot = screenshot(f"FAILED-{item.nodeid}")
            if shot is not None:
                rep.sections.append(("screenshot", str(shot)))
    return rep


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


@pytest.fixture(scope="session")
def artifacts() -> Path:
    return artifacts_dir()


@pytest.fixture(scope="session")
def centrifugo_bin() -> Path:
    binary, problem = _centrifugo_problem()
    if problem is not None or binary is None:
        _unavailable(problem or "Centrifugo binary not found")
    return binary


@pytest.fixture
async def centrifugo(
    centrifugo_bin: Path, tmp_path: Path, request: pytest.FixtureRequest, artifacts: Path
) -> AsyncIterator[CentrifugoFactory]:
    """Start real Centrifugo servers for this test: ``await centrifugo(**run_centrifugo options)``.

    Defaults: ``hmac_secret=DEFAULT_HMAC_SECRET``, ``api_key=DEFAULT_API_KEY``,
    ``allow_subscribe_for_client=True``; ``tmp_path`` and ``binary`` are filled in.
    """
    started: list[CentrifugoInstance] = []
    async with contextlib.AsyncExitStack() as stack:

        async def start(**options: Any) -> CentrifugoInstance:
            options.setdefault("hmac_secret", DEFAULT_HMAC_SECRET)
            options.setdefault("api_key", DEFAULT_API_KEY)
            options.setdefault("allow_subscribe_for_client", True)
            options.setdefault("binary", centrifugo_bin)
            options.setdefault("tmp_path", tmp_path / f"centrifugo-{len(started) + 1}")
            inst = await stack.enter_async_context(run_centrifugo(**options))
            started.append(inst)
            return inst

        yield start
    if _failed(request):
        for n, inst in enumerate(started, 1):
            dest = artifacts / f"{_safe(request.node.nodeid)}-centrifugo-{n}.log"
            with contextlib.suppress(OSError):
                shutil.copyfile(inst.log_path, dest)
            print(f"--- Centrifugo #{n} log ({dest}), tail:\n{inst.log_tail(30)}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:150]


@pytest.fixture
def notifications() -> Iterator[NotificationView]:
    """Notify calls made on the session bus from now on (D-Bus monitor); resets dunst after."""
    reason = desktop_unavailable_reason()
    if reason is not None:
        _unavailable(f"desktop test: {reason}")
    recorder = session_recorder()
    yield NotificationView(recorder, recorder.mark())
    dunst_reset()
