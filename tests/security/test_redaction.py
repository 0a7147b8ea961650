"""The redaction in app/logging_setup.py: the second line of defence behind "never log a secret".

Each case is a line the app or a library could plausibly write: request headers, frames, reprs,
exception texts and tracebacks. The secret must be gone and the rest of the line readable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from app.logging_setup import (
    LOG_FILE_NAME,
    RedactingFormatter,
    redact,
    setup_logging,
)
from tests.support.security import ROOT

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImV4cCI6MTcwMDAwMDAwMH0."
    "kq3bX9fTjVd0Y0u5sJm2hPqO7R3cT8a1wZzN4eQyL6k"
)
OPAQUE = "Zt9Qx3v7Lm2Kp8Rw4Yb6"  # an opaque notification token (not a JWT)
PASSWORD = 'correct horse, "battery" staple}'


def _gone(text: str, *secrets: str) -> None:
    for secret in secrets:
        for part in (secret, *secret.split()):
            if len(part) >= 6:
                assert part not in text, f"{part!r} survived in {text!r}"


@pytest.mark.parametrize(
    "line",
    [
        f"Authorization: Bearer {OPAQUE}",
        f"authorization=Bearer {OPAQUE}",
        f"X-Notification-Token: {OPAQUE}",
        f"{{'Authorization': 'Bearer {OPAQUE}', 'Accept': 'application/json'}}",
        f"<CIMultiDict('X-Notification-Token': '{OPAQUE}', 'User-Agent': 'telex-start/1')>",
        repr(CIMultiDict({"Authorization": f"Bearer {OPAQUE}", "Host": "h"})),
        f"sent header Bearer {OPAQUE} to the server",
        f'{{"id":1,"connect":{{"token":"{OPAQUE}","name":"telex-start"}}}}',
        f'{{"id":2,"subscribe":{{"channel":"o/u","token":"{OPAQUE}"}}}}',
        f'{{"id":3,"sub_refresh":{{"channel":"o/u","token":"{OPAQUE}"}}}}',
        f"access_token={OPAQUE}&x=1",
        f"notification_token: {OPAQUE}",
        f"refresh_token='{OPAQUE}'",
        f"GET /api/v1/thing?token={OPAQUE} -> 200",
        f"Cookie: session={OPAQUE}",
    ],
)
def test_credentials_in_headers_frames_and_urls_are_redacted(line: str):
    out = redact(line)
    _gone(out, OPAQUE)
    assert "[redacted" in out


@pytest.mark.parametrize(
    "line",
    [
        f"token {JWT}",
        f"b'{JWT}'",
        f"connect with {JWT}, then",
        f"https://example.test/?t={JWT}",
    ],
)
def test_jwts_are_redacted_wherever_they_stand(line: str):
    out = redact(line)
    _gone(out, JWT)
    assert "[redacted" in out


@pytest.mark.parametrize(
    "line",
    [
        json.dumps({"email": "a@b.c", "password": PASSWORD}),
        repr({"email": "a@b.c", "password": PASSWORD}),
        f"LoginRequest(email='a@b.c', password={PASSWORD!r})",
        f"password={json.dumps(PASSWORD)}",
        f'{{"passwd": {json.dumps(PASSWORD)}}}',
    ],
)
def test_password_fields_are_redacted_whole_even_with_spaces_quotes_and_commas(line: str):
    """A password is free text: stopping at the first space or quote would leak the rest."""
    out = redact(line)
    _gone(out, PASSWORD, "battery", "staple", "horse")
    assert "a@b.c" not in line or "a@b.c" in out


@pytest.mark.parametrize(
    "line",
    [
        "State: connected (connected, 2 of 2 channel(s) live)",
        "Connection token refreshed",
        "Subscription token of 0b6e/42 refreshed",
        "GET /centrifugo/connection -> 200",
        "The push server refused the connection: token expired (109).",
        "Notification shown: #general · Acme",
    ],
)
def test_ordinary_lines_are_left_alone(line: str):
    assert redact(line) == line


# The patterns redact() used before it was made linear, kept as the oracle of what it must
# still do. They backtrack (cubic on a long name holding "token", quadratic on repeated "eyJ"), so
# they only ever see short lines here.
_OLD_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[^\s"',;&}\])]+)"""
_OLD_SEP = r"""["']?\s*[:=]\s*"""
_OLD_PATTERNS = (
    (re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"), "[redacted-jwt]"),
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization|x-notification-token|cookie|set-cookie)"
            rf"({_OLD_SEP})(?:\b(?:bearer|basic)\s+)?{_OLD_VALUE}"
        ),
        r"\1\2[redacted]",
    ),
    (
        re.compile(
            r"(?i)([\w-]*(?:password|passwd|secret|token|api[_-]?key)[\w-]*)"
            rf"({_OLD_SEP}){_OLD_VALUE}"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;}\])]+"), r"\1 [redacted]"),
)


def _every_pattern(text: str) -> str:
    for pattern, replacement in _OLD_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Lines made of a secret's name in odd cases (also with the characters that case-insensitive
# patterns match to ASCII letters: dotless i, long s, Kelvin sign), a separator and a value,
# among other text; and lines of such pieces in any order.
_NAMES = [
    "password",
    "PassWord",
    "pa\u017f\u017fword",
    "passwd",
    "secret",
    "SECRET",
    "token",
    "toKen",
    "to\u212aen",
    "api_key",
    "API-KEY",
    "apikey",
    "authorization",
    "AUTHORIZATION",
    "author\u0131zation",
    "Proxy-Authorization",
    "x-notification-token",
    "cookie",
    "Set-Cookie",
    "cook\u0131e",
    "bearer",
    "BEARER",
    "Bearer ",
    "eyJhbGciOi.eyJzdWIi.sig",
    "EYJabcdef.ghijkl.m",
]
_SEPARATORS = [": ", "=", '":"', "' = '", " ", ""]
_VALUES = [OPAQUE, "Zt9Q-x3v_7", '"quoted value"', "bearer abcdefgh", "\u0131", "\u0130", ""]
_SECRET_LINES = st.builds(
    lambda *parts: "".join(parts),
    st.text(max_size=6),
    st.sampled_from(_NAMES),
    st.sampled_from(_SEPARATORS),
    st.sampled_from(_VALUES),
    st.text(max_size=6),
)
_JUMBLES = st.lists(
    st.sampled_from(_NAMES + _SEPARATORS + _VALUES) | st.text(max_size=4), max_size=10
).map("".join)


@settings(max_examples=400)
@given(_SECRET_LINES | _JUMBLES)
def test_the_quick_check_never_changes_what_is_redacted(line: str):
    """Lines without a secret's name skip the patterns; that must never let one through."""
    assert redact(line) == _every_pattern(line)


# Runs of the characters where the old patterns backtracked, with the pieces that end them.
_RUNS = st.lists(
    st.sampled_from(["eyJ", "eyJhbGciOi", ".", "-", "_", "x", "ab12", "\\", "\n", '"', "'", "&"])
    | st.sampled_from(_NAMES + _SEPARATORS + _VALUES),
    max_size=16,
).map("".join)


@settings(max_examples=1000)
@given(_RUNS | st.text(max_size=40))
def test_linear_redaction_redacts_exactly_what_the_old_patterns_did(line: str):
    """Names and JWTs are found without backtracking; that must not change what is redacted."""
    assert redact(line) == _every_pattern(line)


_SIZE = 100_000
#: Inputs where the old patterns backtracked (hours at this size), and their neighbours.
_WORST_CASES: dict[str, Callable[[], str]] = {
    "token-repeated": lambda: "token" * (_SIZE // 5),
    "token-dash-token": lambda: "token-" * (_SIZE // 6),
    "eyJ-repeated": lambda: "eyJ" * (_SIZE // 3),
    "eyJ-parts": lambda: "eyJaaaaa." * (_SIZE // 9),
    "long-word": lambda: "a" * _SIZE,
    "long-word-then-token": lambda: "a" * _SIZE + "token",
    "names-and-spaces": lambda: "token " * (_SIZE // 6),
    "name-then-spaces": lambda: "secret" + " " * _SIZE,
    "separator-then-spaces": lambda: "cookie:" + " " * _SIZE,
    "bearers": lambda: "bearer " * (_SIZE // 7),
    "names-with-separators": lambda: "password=" * (_SIZE // 9),
    "mixed": lambda: "token-eyJ_" * (_SIZE // 10),
}


@pytest.mark.parametrize("case", list(_WORST_CASES))
def test_100_kb_of_hostile_text_is_redacted_in_a_few_milliseconds(case: str):
    """A server chooses channel names and error texts; the old patterns took 68 s for 4,000
    characters of "token" (cubic). The best of three runs, so a busy machine does not fail it."""
    text = _WORST_CASES[case]()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        redact(text)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.050, f"{case}: {min(timings) * 1000:.0f} ms"


def _format(record_msg: str, *args: object, exc: BaseException | None = None) -> str:
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord("t", logging.DEBUG, __file__, 1, record_msg, args, exc_info)
    return formatter.format(record)


def test_exception_text_and_traceback_are_redacted():
    def fail() -> None:
        headers = {"X-Notification-Token": OPAQUE}
        raise RuntimeError(f"request failed with {headers} and {JWT}; password={PASSWORD!r}")

    try:
        fail()
    except RuntimeError as exc:
        out = _format("Request failed", exc=exc)
    assert "Traceback" in out
    assert "RuntimeError" in out
    _gone(out, OPAQUE, JWT, PASSWORD)


def test_debug_frame_log_is_redacted():
    frame = json.dumps(
        {"id": 1, "connect": {"token": JWT, "subs": {"o/u": {"token": JWT, "recover": True}}}}
    )
    out = _format("-> %s", frame.encode())
    _gone(out, JWT)
    assert "o/u" in out


def test_setup_logging_writes_a_private_redacted_file(tmp_path: Path):
    log_dir = tmp_path / "logs"
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    hooks = sys.excepthook, threading.excepthook, sys.unraisablehook
    try:
        path = setup_logging("DEBUG", log_dir, to_stderr=False)
        logging.getLogger("app.test").debug("Authorization: Bearer %s", OPAQUE)
        for handler in logging.getLogger().handlers:
            handler.flush()
    finally:
        for handler in logging.getLogger().handlers:
            handler.close()
        logging.getLogger().handlers[:] = saved[0]
        logging.getLogger().setLevel(saved[1])
        sys.excepthook, threading.excepthook, sys.unraisablehook = hooks
        logging.captureWarnings(False)
    assert path == log_dir / LOG_FILE_NAME
    text = path.read_text()
    assert "Authorization: [redacted]" in text
    assert OPAQUE not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700


_UNHANDLED = f"unhandled: Authorization: Bearer {OPAQUE} password={PASSWORD!r} {JWT}"
_CRASH = f"""
import gc, logging, sys, threading, warnings
from pathlib import Path
from app.logging_setup import setup_logging
setup_logging("DEBUG", Path(sys.argv[1]), to_stderr=True)
logging.getLogger("x").info("broken %s %s", {"X-Notification-Token: " + OPAQUE!r})
class Leaky:
    def __del__(self):
        raise ValueError({"ignored: access_token=" + OPAQUE!r})
Leaky(); gc.collect()
warnings.warn({"warned: password=" + repr(PASSWORD)!r})
t = threading.Thread(target=lambda: (_ for _ in ()).throw(ValueError({"token=" + OPAQUE!r})))
t.start(); t.join()
raise RuntimeError({_UNHANDLED!r})
"""


def test_unhandled_exceptions_and_broken_log_calls_do_not_print_secrets(tmp_path: Path):
    """Python's default crash report, its report of exceptions it can only ignore (``__del__``),
    its warnings and logging's "--- Logging error ---" (which prints the call's raw arguments)
    all bypass formatters; setup_logging must route them through it."""
    result = subprocess.run(
        [sys.executable, "-c", _CRASH, str(tmp_path / "log")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    written = result.stderr + (tmp_path / "log" / LOG_FILE_NAME).read_text()
    expected_lines = ("Unhandled error", "RuntimeError", "in thread", "ValueError", "UserWarning")
    for expected in (*expected_lines, "Exception ignored in", "ignored: access_token=[redacted]"):
        assert expected in written, written
    assert "could not be written" in written, written
    _gone(written, OPAQUE, JWT, PASSWORD)
