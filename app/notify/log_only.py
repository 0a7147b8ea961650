"""The last backend: each notice as one line on standard output, for headless servers and
scripts (``--notifier log``), and when no notification service answers.

Standard output, not the log: the notice carries message text, the user's data, which never
goes into a log line or a log file. The log says only which conversation was notified (by key,
in ``app.core.delivery``). The line starts with the time as log lines do, and control
characters are escaped, so nothing from the server can forge a line or move the cursor.
"""

from __future__ import annotations

import sys
from datetime import datetime

from app.logging_setup import escape_controls
from app.models import Notice


def notice_line(notice: Notice, now: datetime) -> str:
    """``2026-01-31 12:00:00,123 Notification: <title> — <body>``, on one line."""
    stamp = f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d}"
    return f"{stamp} Notification: {escape_controls(notice.title)} — {escape_controls(notice.body)}"


class LogNotifier:
    name = "log"
    on_screen = False

    async def send(self, notice: Notice) -> bool:
        """False when there is no standard output (a windowed build): nothing took it."""
        out = sys.stdout
        if out is None:
            return False
        try:
            print(notice_line(notice, datetime.now()), file=out, flush=True)
        except (OSError, ValueError):  # closed, or a broken pipe
            return False
        return True

    async def withdraw(self, key: str) -> None:
        """Nothing to take away from a line already written."""

    async def close(self) -> None:
        return None
