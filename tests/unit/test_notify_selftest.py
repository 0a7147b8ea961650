"""--self-test and the frozen build's module list for the notifiers: the fallback libraries of
each OS are bundled and checked, and one that is absent or broken is reported, not failed."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from app import selftest
from app.selftest import NOTIFIER_MODULES, OPTIONAL_NOTIFIER_MODULES, hidden_imports


@pytest.mark.parametrize(
    ("platform_name", "fallbacks"),
    [
        ("win32", {"app.notify.win10toast", "win10toast_click", "app.notify.balloon"}),
        ("darwin", {"app.notify.pyobjus_center", "pyobjus", "pyobjus.dylib_manager"}),
        ("linux", {"app.notify.chain", "app.notify.desktop", "dbus_fast.aio"}),
    ],
)
def test_the_spec_bundles_each_oss_fallbacks(platform_name: str, fallbacks: set[str]):
    assert fallbacks <= set(hidden_imports(platform_name))


def test_missing_or_broken_fallbacks_are_reported_without_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    broken = tmp_path / "broken_fallback"
    broken.mkdir()
    (broken / "__init__.py").write_text(
        textwrap.dedent("from pkg_resources import resource_filename\n")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    key = selftest.platform_key()
    monkeypatch.setitem(NOTIFIER_MODULES, key, ("app.notify.log_only",))
    monkeypatch.setitem(
        OPTIONAL_NOTIFIER_MODULES, key, ("no_such_fallback.sub", "broken_fallback", "json")
    )
    status, detail = selftest.check_notifiers()
    assert status == "pass"
    assert detail == (
        "imported app.notify.log_only; "
        "optional no_such_fallback.sub: not installed; "
        "optional broken_fallback: unusable (ModuleNotFoundError: import of pkg_resources "
        "halted; None in sys.modules); "
        "optional json: imported"
    )
