"""The long fuzz run, kept out of CI: the properties of test_fuzz.py with many random examples.

    .venv/bin/python tests/security/fuzz_long.py              # 20,000 examples per property
    .venv/bin/python tests/security/fuzz_long.py 200000 -x    # more; extra args go to pytest

Examples are random (not the fixed CI set) and failures are remembered in .cache/hypothesis, so
a found bug is replayed first on the next run. Known bugs stay tolerated for their own input
class only (tests/support/fuzzing.KnownBug); anything else fails with a minimal example.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    examples = argv[0] if argv and argv[0].isdigit() else "20000"
    extra = argv[1:] if argv and argv[0].isdigit() else argv
    env = {**os.environ, "TELEX_FUZZ_EXAMPLES": examples}
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "tests" / "security" / "test_fuzz.py"),
        "-k",
        "not xfail",
        "--timeout=0",
        "-q",
        *extra,
    ]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
