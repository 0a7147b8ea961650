"""Logging, set up once: a rotating file in the per-user log dir, stderr on a terminal, no secrets.

The redaction filter is a second line of defence: code never logs tokens on purpose, but an
exception text or a library's debug line might carry one.

Log lines also carry text the server chose (channel and user names, error messages), so every
record is made harmless before it is written: each argument is shortened, the record is capped,
redacted in time linear in its length, and its control characters are shown as escapes, so no
server text can start a line that looks like a record of its own.
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
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

LOG_FILE_NAME = "telex-start.log"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Longest text of one argument of a log call (server names, reasons, exception texts).
MAX_ARGUMENT = 200
#: Longest message, and longest traceback, of one record, before redaction.
MAX_RECORD = 16_384
#: What starts every line of a record after its first (traceback, stack): a record's first
#: line starts with its time stamp, so a continuation can never pass for a record.
CONTINUATION = "| "

# A value after a secret's name: a quoted string (escapes included, so a password with spaces,
# quotes or commas is caught whole), or else everything up to a delimiter.
_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[^\s"',;&}\])]+)"""
_SEP = r"""["']?\s*[:=]\s*"""

# JWTs: three base64url parts, the first one a JSON header ("eyJ"). Possessive: "." is not a
# part's character, so giving characters back could never help.
_JWT = re.compile(r"eyJ[\w-]{5,}+\.[\w-]{5,}+\.[\w-]*+")
_JWT_REPLACEMENT = "[redacted-jwt]"
_RUN_REST = re.compile(r"[\w-]*+")
# header lines and header mappings: the whole value, scheme included
_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization|x-notification-token|cookie|set-cookie)"
    rf"({_SEP})(?:\b(?:bearer|basic)\s+)?{_VALUE}"
)
# "password": "...", token=..., access_token: ..., notification_token, api_key, secret: a whole
# name (a run of word characters and "-", found once from its first character) followed by a
# separator, then a secret's word somewhere in that name.
_NAME = re.compile(rf"(?<![\w-])[\w-]++(?={_SEP})")
_SECRET_WORD = re.compile(r"(?i)password|passwd|secret|token|api[_-]?key")
_SEP_VALUE = re.compile(rf"({_SEP}){_VALUE}")
# a bearer credential anywhere else
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;}\])]+")


# Every pattern above needs one of these words (case-folded, as the patterns ignore case), so a
# line without any skips the patterns. None has an "i": regular expressions that ignore case also
# match "i" to the dotless i (U+0131), which case-folding leaves alone (the long s U+017F and the
# Kelvin sign U+212A fold to "s" and "k" either way).
_TRIGGERS = ("eyj", "author", "cook", "passw", "secret", "token", "key", "bearer")


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``[redacted]``.

    Linear in the length of ``text``: a server chooses much of what is logged, and a pattern
    that backtracks over a long name froze the app for minutes.
    """
    folded = text.casefold()
    if not any(trigger in folded for trigger in _TRIGGERS):
        return text
    text = _redact_jwts(text)
    text = _HEADER.sub(r"\1\2[redacted]", text)
    text = _redact_named(text)
    return _BEARER.sub(r"\1 [redacted]", text)


def _redact_jwts(text: str) -> str:
    """Each "eyJ" is a candidate; when one fails, so does every later one in the same run of
    word characters (its first part ends where the run ends), so the rest of the run is skipped."""
    parts: list[str] = []
    done = pos = 0
    while (start := text.find("eyJ", pos)) >= 0:
        match = _JWT.match(text, start)
        if match is None:
            pos = _RUN_REST.match(text, start).end()  # type: ignore[union-attr]
            continue
        parts += (text[done:start], _JWT_REPLACEMENT)
        done = pos = match.end()
    return "".join(parts) + text[done:] if parts else text


def _redact_named(text: str) -> str:
    """A name followed by a separator, holding a secret's word: its value is replaced."""
    parts: list[str] = []
    done = pos = 0
    while (name := _NAME.search(text, pos)) is not None:
        pos = name.end()
        if _SECRET_WORD.search(text, name.start(), pos) is None:
            continue
        value = _SEP_VALUE.match(text, pos)
        if value is None:
            continue
        parts += (text[done:pos], value[1], "[redacted]")
        done = pos = value.end()
    return "".join(parts) + text[done:] if parts else text


# Characters that could end a line, move the cursor, hide or reorder text: C0/C1 controls,
# format characters (bidi overrides, zero-width), lone surrogates, line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """``text`` on one line, every control or format character shown as its escape."""
    if text.isprintable():  # the usual case, checked at C speed
        return text
    return "".join(
        _escape_char(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text
    )


def shorten(text: str, limit: int = MAX_ARGUMENT) -> str:
    """At most ``limit`` characters, the cut marked with "…"."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cap(text: str) -> str:
    if len(text) <= MAX_RECORD:
        return text
    return text[:MAX_RECORD] + f"… ({len(text) - MAX_RECORD} more characters not logged)"


class _Shortened:
    """An exception argument, shown (``%s`` or ``%r``) at most ``MAX_ARGUMENT`` long."""

    def __init__(self, value: BaseException) -> None:
        self._value = value

    def __str__(self) -> str:
        return shorten(str(self._value))

    def __repr__(self) -> str:
        return shorten(repr(self._value))


def _short_argument(value: object) -> object:
    if isinstance(value, str):
        return shorten(value)
    if isinstance(value, bytes | bytearray) and len(value) > MAX_ARGUMENT:
        return bytes(value[: MAX_ARGUMENT - 3]) + b"..."
    if isinstance(value, BaseException):
        return _Shortened(value)
    return value


def _short_arguments(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {key: _short_argument(value) for key, value in args.items()}
    return tuple(_short_argument(value) for value in args)


class RedactingFormatter(logging.Formatter):
    """Formats a record once for every handler: its arguments shortened, message and traceback
    capped, then redacted, then escaped so the record is one line (a traceback's own lines
    follow, each marked with ``CONTINUATION``)."""

    def format(self, record: logging.LogRecord) -> str:
        cached = record.__dict__.get("_telex_formatted")
        if cached is not None and cached[0] is self:
            return str(cached[1])
        text = self._format_once(record)
        record.__dict__["_telex_formatted"] = (self, text)
        return text

    def _format_once(self, record: logging.LogRecord) -> str:
        message = str(record.msg)
        if record.args:
            message = message % _short_arguments(record.args)
        record.message = message
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(redact(_cap(self.formatMessage(record))))
        extra: list[str] = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if block:
                extra += redact(_cap(block)).split("\n")
        return "\n".join([line, *(CONTINUATION + escape_controls(more) for more in extra)])


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

    Unhandled exceptions (main thread and others), exceptions Python can only ignore (in
    ``__del__``, callbacks of garbage collection) and warnings are logged through the same
    redaction instead of Python's default printing, which would write their text to stderr as
    it is.
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
                log_path,
                maxBytes=1_000_000,
                backupCount=3,
                encoding="utf-8",
                errors="backslashreplace",  # whatever the text, the line is written
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
    sys.unraisablehook = _log_unraisable
    logging.captureWarnings(True)
    return log_path


#: The logger of the line that scripts and the test suites read, stable whatever module writes
#: it: ``State: <phase> (<detail>)`` (and ``; next attempt in <s> s``) on every change of the
#: connection. (The log-only backend's ``Notification:`` lines go to standard output instead:
#: they carry message text.)
EVENTS_LOGGER = "telex-start.events"

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


def _log_unraisable(args: sys.UnraisableHookArgs) -> None:
    what = args.err_msg or "Exception ignored in"
    if args.object is not None:
        try:
            what = f"{what}: {args.object!r}"
        except Exception:  # a broken repr must not hide the exception
            what = f"{what}: a {type(args.object).__name__} object"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback) if args.exc_value else None
    _crash_logger.error("%s", what, exc_info=exc_info)
