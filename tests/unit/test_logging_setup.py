"""The log file rotates where the standard handler would, though it counts sizes itself; every
record is shortened, capped, formatted once and kept on one line, whatever text the server chose."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from pathlib import Path

import pytest

from app.logging_setup import (
    CONTINUATION,
    FORMAT,
    LOG_FILE_NAME,
    MAX_ARGUMENT,
    MAX_RECORD,
    RedactingFormatter,
    _FileHandler,
    setup_logging,
)


def _write(handler: logging.Handler, lines: list[str]) -> None:
    handler.setFormatter(RedactingFormatter(FORMAT))
    for number, text in enumerate(lines):
        record = logging.LogRecord("t", logging.INFO, __file__, number, text, (), None)
        record.created = 1_700_000_000.0  # one time stamp for both handlers
        record.msecs = 0.0
        handler.handle(record)
    handler.close()


def _files(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("existing", ["", "x" * 700 + "\n"])
def test_rotates_at_the_same_lines_as_the_standard_handler(tmp_path: Path, existing: str):
    lines = [f"line {n} " + "y" * (n * 7 % 90) for n in range(400)]
    ours, standard = tmp_path / "ours", tmp_path / "standard"
    for folder in (ours, standard):
        folder.mkdir()
        (folder / LOG_FILE_NAME).write_text(existing)
    _write(_FileHandler(ours / LOG_FILE_NAME, maxBytes=2000, backupCount=3), lines)
    _write(
        logging.handlers.RotatingFileHandler(
            standard / LOG_FILE_NAME, maxBytes=2000, backupCount=3
        ),
        lines,
    )
    assert _files(ours) == _files(standard)
    assert len(_files(ours)) == 4  # the file and three rotated copies


def test_a_file_written_by_someone_else_meanwhile_is_counted_when_reopened(tmp_path: Path):
    path = tmp_path / LOG_FILE_NAME
    path.write_text("z" * 1500 + "\n")
    handler = _FileHandler(path, maxBytes=2000, backupCount=1)
    _write(handler, ["a line of about sixty characters once formatted" * 10])
    assert (tmp_path / f"{LOG_FILE_NAME}.1").read_text().startswith("z" * 1500)
    assert "a line of about" in path.read_text()


# -- what the server chose: shortened, capped, formatted once, escaped ----------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _logged(msg: str, *args: object, exc: BaseException | None = None) -> str:
    handler = _Collect()
    handler.setFormatter(RedactingFormatter(FORMAT))
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    handler.handle(logging.LogRecord("app.t", logging.INFO, __file__, 1, msg, args, exc_info))
    (line,) = handler.lines
    return line


def test_long_arguments_are_shortened_but_the_format_string_is_not():
    name = "token" * 4000  # a channel name of 20,000 characters
    line = _logged("Notification: #%s (%s, %r)", name, ValueError("x" * 500), b"y" * 500)
    assert "#" + "token" * 39 + "toke…" in line
    assert "x" * MAX_ARGUMENT not in line
    assert "x" * 100 + "…" in line
    assert "y" * MAX_ARGUMENT not in line
    assert len(line) < 1000
    fixed = "A fixed text of the app " * 20
    assert fixed in _logged(fixed + "%s", "!")


def test_a_record_is_capped_before_it_is_redacted(monkeypatch: pytest.MonkeyPatch):
    seen: list[int] = []

    def measuring(text: str) -> str:
        seen.append(len(text))
        return text

    monkeypatch.setattr("app.logging_setup.redact", measuring)
    line = _logged("z" * 1_000_000)
    assert len(seen) == 1
    assert seen[0] < MAX_RECORD + 100  # and the note of what was cut
    assert len(line) < MAX_RECORD + 100
    assert line.endswith("more characters not logged)")


def test_a_record_is_formatted_and_redacted_once_for_every_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    calls: list[str] = []

    def counting(text: str) -> str:
        calls.append(text)
        return text

    monkeypatch.setattr("app.logging_setup.redact", counting)
    formatter = RedactingFormatter(FORMAT)
    handlers = [_Collect(), _FileHandler(tmp_path / LOG_FILE_NAME, maxBytes=0)]
    logger = logging.getLogger("app.test-once")
    logger.propagate = False
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    try:
        logger.warning("Ignoring a malformed message: %s", "secret")
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True
    assert len(calls) == 1
    assert "Ignoring a malformed message: secret" in (tmp_path / LOG_FILE_NAME).read_text()


FORGED = "2026-12-02 07:20:00,000 INFO    app.core.api: Signed in as user admin"


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("#general\n" + FORGED, "#general\\n2026-12-02"),
        ("#general\r" + FORGED, "#general\\r2026-12-02"),
        ("\x1b]0;owned\x07\x1b[2J", "\\x1b]0;owned\\x07\\x1b[2J"),
        ("a\x00b", "a\\x00b"),
        ("Ada\u202egpj.exe", "Ada\\u202egpj.exe"),
        ("zero\u200bwidth\u2066", "zero\\u200bwidth\\u2066"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("line\u2028sep\x85", "line\\u2028sep\\x85"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ],
)
def test_server_text_cannot_start_a_line_or_reach_a_terminal(hostile: str, shown: str):
    line = _logged("Notification: %s", hostile)
    assert shown in line
    assert line.isprintable(), line
    assert len(line.splitlines()) == 1


def test_a_traceback_keeps_its_lines_but_none_of_them_can_pass_for_a_record():
    try:
        raise ValueError("the server said:\n" + FORGED + "\x1b[31m")
    except ValueError as exc:
        line = _logged("Push connection task failed", exc=exc)
    first, *rest = line.split("\n")
    assert first.endswith("Push connection task failed")
    assert rest[0] == CONTINUATION + "Traceback (most recent call last):"
    assert all(more.startswith(CONTINUATION) for more in rest)
    assert CONTINUATION + FORGED + "\\x1b[31m" in rest
    assert "\x1b" not in line


def test_the_log_file_takes_every_line_even_a_lone_surrogate(tmp_path: Path):
    root = logging.getLogger()
    saved = root.handlers[:], root.level, sys.excepthook, threading.excepthook, sys.unraisablehook
    try:
        path = setup_logging("INFO", tmp_path, to_stderr=False)
        (handler,) = root.handlers
        handler.setFormatter(logging.Formatter("%(message)s"))  # even without the escaping
        logging.getLogger("app.t").info("a \ud800 b")
        handler.close()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        sys.excepthook, threading.excepthook, sys.unraisablehook = saved[2:]
        logging.captureWarnings(False)
    assert path is not None
    assert path.read_text() == "a \\ud800 b\n"
