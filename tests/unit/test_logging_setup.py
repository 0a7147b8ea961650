"""The log file rotates where the standard handler would, though it counts sizes itself."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import pytest

from app.logging_setup import FORMAT, LOG_FILE_NAME, RedactingFormatter, _FileHandler


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
