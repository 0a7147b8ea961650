"""A session bus of the test's own, with a real dunst on it that the test may kill and restart.

The suite's shared dunst (tests/desktop-session.sh) must stay up for the other tests, and the
normal session bus would D-Bus-activate the distribution's dunst the moment a notification is
sent to a dead server. So each test here gets its own ``dbus-daemon`` whose configuration has no
service directories (nothing is ever auto-started: "no notification server" stays true), and
starts, kills and restarts its own dunst on it (on the shared Xvfb display). Everything started
here is stopped by PID.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.desktop import NotificationRecorder
from tests.support.private_bus import PrivateBus


@pytest.fixture
def private_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBus]:
    bus = PrivateBus(tmp_path_factory.mktemp("bus"))
    bus.start()
    try:
        yield bus
    finally:
        bus.stop()


@pytest.fixture
def on_private_bus(private_bus: PrivateBus, monkeypatch: pytest.MonkeyPatch) -> PrivateBus:
    """This process talks to the private bus from now on (dbus-fast reads the address when it
    connects)."""
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", private_bus.address)
    return private_bus


@pytest.fixture
def recorder(on_private_bus: PrivateBus) -> Iterator[NotificationRecorder]:
    """The Notify calls and signals on the private bus."""
    with NotificationRecorder() as recording:
        yield recording
