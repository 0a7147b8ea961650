"""Strategies and settings shared by the fuzz tests (tests/security/test_fuzz.py) and the long run
(tests/security/fuzz_long.py).

CI runs a bounded, derandomized number of examples (the same ones every run, so a failure is
reproducible and an xfail stays put). ``TELEX_FUZZ_EXAMPLES=N`` runs N random examples per test
instead, with Hypothesis' example database under ``.cache/hypothesis``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[2]
LONG_RUN = "TELEX_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("TELEX_FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not LONG_RUN,
    database=DirectoryBasedExampleDatabase(ROOT / ".cache" / "hypothesis") if LONG_RUN else None,
    deadline=None,  # hangs are caught by pytest-timeout; a per-example deadline is flaky on CI
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=LONG_RUN,
)

# -- JSON ---------------------------------------------------------------------------------------

#: Numbers a hostile server may send: huge, negative, fractional, and (Python's json accepts
#: them) Infinity and NaN.
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, 2**70, 10**300, 10**400]),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0, 0.5]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=40))


def json_like(keys: Sequence[str], text_values: Sequence[str] = ()) -> st.SearchStrategy[Any]:
    """JSON values whose objects mostly use ``keys``: deep enough to reach real code paths."""
    key = st.one_of(st.sampled_from(list(keys) or [""]), st.text(max_size=8))
    leaf = st.one_of(scalars, st.sampled_from(list(text_values) or [""]))
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=6)
        ),
        max_leaves=40,
    )


ANYTHING = json_like(())


def dumps(value: Any) -> str:
    """JSON as a lenient server would write it (NaN and Infinity included)."""
    return json.dumps(value, allow_nan=True)


def has_nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(has_nonfinite(v) for v in value)
    return False


def has_float_overflow(value: Any) -> bool:
    """An int too big for a float, or a non-finite float: what ``float()``/``int()`` choke on."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) >= 2**1023
    if isinstance(value, dict):
        return any(has_float_overflow(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float_overflow(v) for v in value)
    return has_nonfinite(value)


def nested(depth: int) -> str:
    """JSON nested ``depth`` levels deep (Python's parser gives up near 1000)."""
    return "[" * depth + "]" * depth


# -- text for the logs -----------------------------------------------------------------------------

#: Pieces of the inputs where regular expressions backtrack: secrets' names, JWT headers, word
#: characters, separators, quotes, and the control characters that could forge a log line.
_RUN_PIECES = (
    "token", "TOKEN", "secret", "passw", "password", "api_key", "bearer", "cookie", "eyJ",
    "eyJhbGci", "authorization", "x", "_", "-", ".", "=", ":", " ", '"', "'", "\\", "&",
    "\n", "\r", "\x1b", "\x00", "\u202e", "\u200b", "\ud800", "\u2028",
)  # fmt: skip


def _repeat(pieces: list[str], times: int) -> str:
    return "".join(pieces) * times


#: Long runs (up to about 100 KB) of a few of those pieces, repeated: what a server can put in a
#: channel name or an error message.
hostile_runs = st.builds(
    _repeat,
    st.lists(st.sampled_from(_RUN_PIECES) | st.text(max_size=3), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=3_000),
)


# -- known bugs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownBug:
    """A bug the fuzzer would report every run. It is tolerated in the fuzz test only for its
    own input class, so the fuzzer keeps guarding everything else; each has an xfail(strict)
    test in test_fuzz.py that turns red once the bug is fixed (then delete both)."""

    errors: tuple[type[BaseException], ...]
    when: Callable[[Any], bool]
    what: str


def tolerated(exc: BaseException, value: Any, known: Sequence[KnownBug]) -> bool:
    return any(isinstance(exc, bug.errors) and bug.when(value) for bug in known)


def shaped(
    required: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the documented fields, each usually of the documented kind but sometimes
    any JSON at all: the shape gets the fuzzer past the first checks, the noise finds bugs."""
    anything = ANYTHING

    def noisy(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(strategy, strategy, strategy, anything)

    return st.fixed_dictionaries(
        {k: noisy(v) for k, v in required.items()},
        optional={k: noisy(v) for k, v in (optional or {}).items()},
    )
