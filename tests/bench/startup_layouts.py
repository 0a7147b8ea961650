"""Start-up of the two Linux layouts side by side: the one-file binary (``dist/telex-start``,
which unpacks itself into a temp dir on every start) and the one-dir app the .deb and .rpm
install (``dist/telex-start-onedir``; ``/usr/bin/telex-start`` too when a package is installed).

    xvfb-run -a .venv/bin/python -m tests.bench.startup_layouts [--runs 11]

For each command (``--version``, and ``--self-test`` with an API address that refuses at once, so
no network time is counted) the layouts take turns, run after run, so a drift of the machine
hits all of them alike; one warm-up run each is not counted. Prints median, min and max wall
time per layout and command, then one JSON object as the last line. The page cache is warm (a
first start after boot reads the files from disk; this does not measure that). ``--self-test``
needs an X display (the tray check); without one it fails fast and measures less.

Not part of the test suite: it prints figures, it does not pass or fail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "--version": ["--version"],
    "--self-test": ["--self-test", "--api-url", "http://127.0.0.1:9/api/v1"],
}


def run_once(binary: Path, args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(
        [str(binary), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    return time.monotonic() - started


def measure(layouts: dict[str, Path], runs: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {
        cmd: {name: [] for name in layouts} for cmd in COMMANDS
    }
    with tempfile.TemporaryDirectory(prefix="telex-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEX_")}
        env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/.config", XDG_STATE_HOME=f"{home}/.state")
        for command, args in COMMANDS.items():
            for binary in layouts.values():
                run_once(binary, args, env)  # warm-up: page cache, not counted
            for _ in range(runs):
                for name, binary in layouts.items():
                    times[command][name].append(run_once(binary, args, env))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--onefile", type=Path, default=ROOT / "dist" / "telex-start")
    parser.add_argument(
        "--onedir", type=Path, default=ROOT / "dist" / "telex-start-onedir" / "telex-start"
    )
    parser.add_argument("--installed", type=Path, default=Path("/usr/bin/telex-start"))
    args = parser.parse_args()
    layouts = {"one-file": args.onefile, "one-dir": args.onedir}
    if args.installed.exists():
        layouts["installed package"] = args.installed
    missing = [str(path) for path in layouts.values() if not path.exists()]
    if missing:
        sys.exit(f"not built: {', '.join(missing)} (bash build/linux.sh)")

    times = measure(layouts, args.runs)
    print(f"{args.runs} runs each, alternating; seconds (median / min / max)")
    print(f"{'command':<12} {'layout':<18} {'median':>7} {'min':>7} {'max':>7}")
    summary: dict[str, dict[str, float]] = {}
    for command, by_layout in times.items():
        for name, values in by_layout.items():
            median = statistics.median(values)
            summary.setdefault(command, {})[name] = round(median, 4)
            print(f"{command:<12} {name:<18} {median:7.3f} {min(values):7.3f} {max(values):7.3f}")
    print(json.dumps({"runs": args.runs, "median_s": summary}))


if __name__ == "__main__":
    main()
