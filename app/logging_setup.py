"""Logging, set up once: a rotating file in the per-user log dir, stderr on a terminal, no secrets.

The redaction filter is a second line of defence: code never logs tokens on purpose, but an
exception text or a library's debug line might carry one.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path

LOG_FILE_NAME = "telex-start.log"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_SECRET_PATTERNS = (
    # JWTs: three base64url parts, the first one a JSON header ("eyJ")
    (re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"), "[redacted-jwt]"),
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer\s+)?[^\s\"',}]+"),
        r"\1[redacted]",
    ),
    (re.compile(r"(?i)(x-notification-token[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1[redacted]"),
    (
        re.compile(
            r"(?i)([\"']?(?:password|notification_token|access_token|token)[\"']?\s*[:=]\s*"
            r"[\"']?)[^\s\"',}]+"
        ),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats first (message, args, traceback), then scrubs the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str, log_dir: Path | None, *, to_stderr: bool) -> Path | None:
    """Returns the log file path, or None when the log dir cannot be written (stderr only)."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = RedactingFormatter(FORMAT)
    log_path: Path | None = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / LOG_FILE_NAME
            file_handler = logging.handlers.RotatingFileHandler(
                log_path, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
            )
        except OSError as exc:
            sys.stderr.write(f"telex-start: cannot write logs to {log_dir}: {exc.strerror}\n")
            log_path = None
        else:
            file_handler.setFormatter(formatter)
            root.addHandler(file_handler)
    if to_stderr or log_path is None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    # Dependencies stay quiet unless we debug: their debug lines may describe frames.
    for noisy in ("aiohttp", "desktop_notifier", "dbus_fast", "PIL", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return log_path
