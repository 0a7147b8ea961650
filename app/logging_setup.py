"""Logging, set up once: a rotating file in the per-user log dir, stderr on a terminal, no secrets.

The redaction filter is a second line of defence: code never logs tokens on purpose, but an
exception text or a library's debug line might carry one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import os
import re
import stat
import sys
import threading
from pathlib import Path
from types import TracebackType

LOG_FILE_NAME = "telex-start.log"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# A value after a secret's name: a quoted string (escapes included, so a password with spaces,
# quotes or commas is caught whole), or else everything up to a delimiter.
_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[^\s"',;&}\])]+)"""
_SEP = r"""["']?\s*[:=]\s*"""

_SECRET_PATTERNS = (
    # JWTs: three base64url parts, the first one a JSON header ("eyJ")
    (re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"), "[redacted-jwt]"),
    # header lines and header mappings: the whole value, scheme included
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization|x-notification-token|cookie|set-cookie)"
            rf"({_SEP})(?:\b(?:bearer|basic)\s+)?{_VALUE}"
        ),
        r"\1\2[redacted]",
    ),
    # "password": "...", token=..., access_token: ..., notification_token, api_key, secret
    (
        re.compile(
            r"(?i)([\w-]*(?:password|passwd|secret|token|api[_-]?key)[\w-]*)"
            rf"({_SEP}){_VALUE}"
        ),
        r"\1\2[redacted]",
    ),
    # a bearer credential anywhere else
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;}\])]+"), r"\1 [redacted]"),
)


# Every pattern above needs one of these words (case-folded, as the patterns ignore case), so a
# line without any skips the patterns. None has an "i": regular expressions that ignore case also
# match "i" to the dotless i (U+0131), which case-folding leaves alone (the long s U+017F and the
# Kelvin sign U+212A fold to "s" and "k" either way).
_TRIGGERS = ("eyj", "author", "cook", "passw", "secret", "token", "key", "bearer")


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``[redacted]``."""
    folded = text.casefold()
    if not any(trigger in folded for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats first (message, args, traceback), then scrubs the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _QuietErrors(logging.Handler):
    """logging's own error report prints the record's raw arguments to stderr; this one names
    the call site only, so a broken log call cannot print a token."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        sys.stderr.write(
            f"telex-start: a log line from {record.name}:{record.lineno} could not be written\n"
        )


class _StreamHandler(_QuietErrors, logging.StreamHandler):  # type: ignore[type-arg]
    pass


class _FileHandler(_QuietErrors, logging.handlers.RotatingFileHandler):
    """The log file (and its rotated copies) is readable by this user alone.

    The size is counted as lines are written (the standard handler formats every line twice and
    asks the file system for its size each time). Characters are counted, not bytes: a line of
    non-ASCII text lets the file grow a little past ``maxBytes`` before it rotates.
    """

    _written = 0
    _rotates = True

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with contextlib.suppress(OSError):
            os.chmod(self.baseFilename, 0o600)  # a file left by an older version
        found = os.fstat(fd)
        self._written = found.st_size
        self._rotates = stat.S_ISREG(found.st_mode)  # never rotate a device or a pipe
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self._rotates and 0 < self.maxBytes <= self._written + len(line):
                self.doRollover()
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(line)
            self.stream.flush()
            self._written += len(line)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def setup_logging(level: str, log_dir: Path | None, *, to_stderr: bool) -> Path | None:
    """Returns the log file path, or None when the log dir cannot be written (stderr only).

    Unhandled exceptions (main thread and others) are logged through the same redaction
    instead of Python's default printing, which would write their text to stderr as it is.
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = RedactingFormatter(FORMAT)
    log_path: Path | None = None
    if log_dir is not None:
        try:
            log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            log_path = log_dir / LOG_FILE_NAME
            file_handler = _FileHandler(
                log_path, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
            )
        except OSError as exc:
            sys.stderr.write(f"telex-start: cannot write logs to {log_dir}: {exc.strerror}\n")
            log_path = None
        else:
            file_handler.setFormatter(formatter)
            root.addHandler(file_handler)
    if to_stderr or log_path is None:
        stream = _StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    # Dependencies stay quiet unless we debug: their debug lines may describe frames.
    for noisy in ("aiohttp", "desktop_notifier", "dbus_fast", "PIL", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    sys.excepthook = _log_unhandled
    threading.excepthook = _log_unhandled_in_thread
    return log_path


_crash_logger = logging.getLogger("telex-start.crash")


def _log_unhandled(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    _crash_logger.critical("Unhandled error; Telex Start stops", exc_info=(kind, exc, tb))


def _log_unhandled_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    _crash_logger.error(
        "Unhandled error in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
