"""A session bus of the test's own with a real dunst on it, that a test may kill and restart
(:class:`PrivateBus`; why, and the fixtures: tests/notify/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.support.desktop import artifacts_dir

ROOT = Path(__file__).resolve().parents[2]


STARTUP_TIMEOUT = 10.0


BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class PrivateBus:
    """A session bus without service activation, and a dunst on it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.address = ""
        self._daemon: subprocess.Popen[str] | None = None
        self._dunst: subprocess.Popen[bytes] | None = None
        self._dunstrc = work / "dunstrc"
        template = (ROOT / "tests" / "dunstrc").read_text()
        self._dunstrc.write_text(template.replace("@DMENU@", "/bin/true"))

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def start(self) -> None:
        config = self.work / "bus.conf"
        config.write_text(BUS_CONFIG.format(dir=self.work))
        self._daemon = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._daemon.stdout is not None
        self.address = self._daemon.stdout.readline().strip()
        assert self.address.startswith("unix:"), self.address

    def start_dunst(self) -> None:
        assert self._dunst is None, "dunst runs already"
        log = (artifacts_dir() / "notify-dunst.log").open("ab")
        self._dunst = subprocess.Popen(
            ["dunst", "-config", str(self._dunstrc)], env=self.env, stdout=log, stderr=log
        )
        log.close()
        self._wait_for_owner(owned=True)

    def kill_dunst(self) -> None:
        """As a crash would: SIGKILL, and the name is gone from the bus."""
        dunst, self._dunst = self._dunst, None
        assert dunst is not None
        dunst.kill()
        dunst.wait(STARTUP_TIMEOUT)
        self._wait_for_owner(owned=False)

    def dunstctl(self, *args: str) -> str:
        return subprocess.run(
            ["dunstctl", *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout

    def stop(self) -> None:
        for proc in (self._dunst, self._daemon):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STARTUP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._daemon is not None and self._daemon.stdout is not None:
            self._daemon.stdout.close()

    def _wait_for_owner(self, *, owned: bool) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self._owned() != owned:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"org.freedesktop.Notifications {'never appeared' if owned else 'stayed'}"
                )
            time.sleep(0.05)

    def _owned(self) -> bool:
        reply = subprocess.run(
            [
                "dbus-send",
                f"--bus={self.address}",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.Notifications",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return "boolean true" in reply.stdout
