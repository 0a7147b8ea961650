"""End-to-end tests run against both push servers (the stack: tests/support/stack.py)."""

from __future__ import annotations

import pytest

from tests.desktop.conftest import (  # noqa: F401  (the desktop app's fixtures, for clicks)
    app_env,
    fake_main_app,
    launch_app,
    runtime_dir,
)

#: (push server, connect-time subs honoured) — every end-to-end case runs against all four.
PUSH_SERVERS = [
    pytest.param(("centrifugo", True), id="centrifugo-connect-subs", marks=pytest.mark.centrifugo),
    pytest.param(("centrifugo", False), id="centrifugo-sub-tokens", marks=pytest.mark.centrifugo),
    pytest.param(("builtin", True), id="builtin-connect-subs"),
    pytest.param(("builtin", False), id="builtin-sub-tokens"),
]
