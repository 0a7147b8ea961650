"""Secrets live in memory only: the whole headless flow, run as a user runs it, leaves no token and
no password in any file, in the app's command line or environment, or in its log output; and the
text of a message, the user's data, is in no file and no log line either (only on standard
output, where the log-only backend shows notifications).

The flow: sign-in, token refreshes (4-second token lifetimes), a reconnect forced by the push
server, a session revoked on the server (headless signs in again with the held password), a
clean exit; then a run killed with SIGKILL mid-session, and a run whose new sign-in is refused
(exit 4). HOME, the XDG dirs and TMPDIR all point into one private tree, logging is at DEBUG,
and every credential the simulator handed out is known (tests/support/security.TokenLedger).
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import tempfile
import time
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tests.support.security import (
    PrivateTree,
    TokenLedger,
    core_file_limit,
    find_secrets,
    headless_args,
    launch_app,
    listening_sockets,
    proc_blobs,
    read_files,
)

TOKEN_TTL = 4  # seconds: the app refreshes every few seconds (its own margin is 30 s)
EMAIL = "secrets@telex.local"


def _new_files_in_system_temp(since: float, skip: Path) -> list[tuple[str, bytes]]:
    """Files in the system temp dir changed during the test, in case anything ignored TMPDIR."""
    blobs = []
    root = Path(tempfile.gettempdir())
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(dirpath) / d).is_relative_to(skip)]
        for name in names:
            path = Path(dirpath) / name
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_mtime >= since and info.st_size < 1 << 24:
                    blobs.append((str(path), path.read_bytes()))
            except OSError:
                continue
    return blobs


@pytest.mark.usefixtures("core_files_allowed")
async def test_no_secret_reaches_a_file_argv_environment_or_log(tmp_path: Path):
    started = time.time()
    tree = PrivateTree(tmp_path / "private")
    # A password that redaction must catch whole: spaces, quotes, a comma and a backslash.
    password = f'pass word, "{secrets.token_urlsafe(12)}" \\ {secrets.token_hex(6)}'
    message_text = f"the numbers for {secrets.token_hex(8)} are in"
    ledger = TokenLedger()
    stack = LocalStack(
        connection_token_ttl=TOKEN_TTL,
        subscription_token_ttl=TOKEN_TTL,
        push_options={"ping_interval": 2.0, "pong_timeout": 1.0},
    )
    ledger.attach(stack.simulator)
    user = stack.simulator.add_user(EMAIL, password, orgs=("Acme", "Globex"))
    seen: list[tuple[str, bytes]] = []
    logged: list[tuple[str, bytes]] = []  # stderr: the log output alone
    async with stack:
        sim = stack.simulator
        args = headless_args(EMAIL, stack.api_url, stack.ws_url, "--log-level", "DEBUG")
        org_ids = [org.id for org in sim.orgs_of(EMAIL)]

        # -- run 1: sign in, refresh, reconnect, re-authenticate, exit ----------------------
        app = await launch_app(tree, *args, stdin=password + "\n")
        await app.wait_line("2 of 2 channel(s) live")
        seen += proc_blobs(app.pid)
        assert listening_sockets(app.pid) == []  # nothing listens on a network interface
        assert core_file_limit(app.pid) == "0"  # a crash writes no core file
        await sim.post_message(EMAIL, org_ids[0], "general")
        await app.wait_line("Notification shown")
        ada = sim.add_member(org_ids[0], "Ada Obi")
        await sim.send_message(
            ada.email, org_ids[0], message_text, channel="general", mentions=[EMAIL]
        )
        await app.wait_line(message_text)  # shown: on standard output
        await app.wait_line("Connection token refreshed", timeout=3 * TOKEN_TTL)
        await app.wait_line("Subscription token of", timeout=3 * TOKEN_TTL)

        mark = app.mark()
        push_server = stack.push_server
        assert push_server is not None
        await push_server.disconnect_user(user.id, code=3001, reason="shutdown")
        await app.wait_line("State: reconnecting", since=mark)
        await app.wait_line("2 of 2 channel(s) live", since=mark)

        mark = app.mark()
        assert sim.revoke_sessions(EMAIL) == 1
        await app.wait_line("signing in again", since=mark, timeout=4 * TOKEN_TTL)
        await app.wait_line("2 of 2 channel(s) live", since=mark)
        await sim.post_message(EMAIL, org_ids[1], "general")
        await app.wait_line("Notification shown", since=mark)
        seen += proc_blobs(app.pid)
        assert await app.stop(signal.SIGTERM) == 0
        logged.append(("stderr of run 1", "\n".join(app.log_lines).encode()))
        seen.append(("stdout and stderr of run 1", app.output.encode()))

        # -- run 2: killed mid-session (the crash path) ----------------------------------------
        crashed = await launch_app(tree, *args, stdin=password + "\n")
        await crashed.wait_line("2 of 2 channel(s) live")
        await crashed.wait_line("Connection token refreshed", timeout=3 * TOKEN_TTL)
        seen += proc_blobs(crashed.pid)
        assert await crashed.stop(signal.SIGKILL) == -signal.SIGKILL
        logged.append(("stderr of run 2", "\n".join(crashed.log_lines).encode()))
        seen.append(("stdout and stderr of run 2", crashed.output.encode()))

        # -- run 3: the session is revoked and signing in again is refused (exit 4) -------------
        refused = await launch_app(tree, *args, stdin=password + "\n")
        await refused.wait_line("2 of 2 channel(s) live")
        sim.fail_next("/auth/login", 400, {"status": "error", "message": "invalid credentials"})
        sim.revoke_sessions(EMAIL)
        assert await refused.wait_exit(timeout=6 * TOKEN_TTL) == 4
        logged.append(("stderr of run 3", "\n".join(refused.log_lines).encode()))
        seen.append(("stdout and stderr of run 3", refused.output.encode()))

    # The scan only means something if the flow really happened and was logged at DEBUG.
    # (tokens with equal claims issued in the same second are equal, hence "at least")
    assert ledger.count("access_token") == 4  # three runs and one new sign-in
    assert ledger.count("connection") >= 4
    assert ledger.count("subscription") >= 6
    logs = tree.log_files()
    assert logs, "the app wrote no log file"
    log_text = "".join(p.read_text(errors="replace") for p in logs)
    for expected in ("DEBUG", "Signed in as user", "token refreshed", "signing in again"):
        assert expected in log_text

    written = read_files(tree.root) + _new_files_in_system_temp(started, tree.root)
    secrets_by_name = {"password": password}
    for n, (token, kind) in enumerate(ledger.issued.items()):
        secrets_by_name[f"{kind} #{n}"] = token
    assert find_secrets(written + seen, secrets_by_name) == []
    assert message_text in app.output  # the scan below means something
    assert find_secrets(written + logged, {"message text": message_text}) == []

    # What is on disk is private to the user.
    for path in logs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
