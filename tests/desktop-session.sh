#!/usr/bin/env bash
# Desktop session for the test suite. Runs INSIDE a private X server and session bus:
#
#   xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" \
#       dbus-run-session -- bash tests/desktop-session.sh [pytest args]
#
# (that is what `bash tests/run.sh` does). Starts dunst (our tests/dunstrc) and trayer, waits until
# dunst owns org.freedesktop.Notifications and trayer owns the _NET_SYSTEM_TRAY_S0 selection, runs
# pytest with the given arguments, stops what it started (by PID) and exits with pytest's code.
#
# Environment: PY (python to run pytest with; default .venv/bin/python), ARTIFACTS (default
# <repo>/artifacts; dunst.log and trayer.log go there). Exported for the tests: DUNST_PICK_FILE,
# DUNST_MENU_LOG (see tests/dmenu-stub.sh), TELEX_DESKTOP_HARNESS=1, NO_AT_BRIDGE=1.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
ARTIFACTS=${ARTIFACTS:-$ROOT/artifacts}
export ARTIFACTS
mkdir -p "$ARTIFACTS"

: "${DISPLAY:?run me under xvfb-run (see the header of this file)}"
: "${DBUS_SESSION_BUS_ADDRESS:?run me under dbus-run-session (see the header of this file)}"

# Keep GTK from D-Bus-activating at-spi-bus-launcher (+ a second dbus-daemon) on our bus.
export NO_AT_BRIDGE=1
export TELEX_DESKTOP_HARNESS=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/telex-desktop.XXXXXX")
PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "desktop-session: $*" >&2
    exit 1
}

for tool in dunst dunstctl trayer dbus-send xdotool; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (bash tests/run.sh installs it)"
done

# dunst: the effective config points `dmenu` at the stub by absolute path. The stub is copied
# into $WORK so that a repo path with spaces or a checkout without the executable bit still works.
install -m 0755 "$ROOT/tests/dmenu-stub.sh" "$WORK/dmenu-stub.sh"
dunstrc_template=$(<"$ROOT/tests/dunstrc")
printf '%s\n' "${dunstrc_template//@DMENU@/$WORK/dmenu-stub.sh}" >"$WORK/dunstrc"
export DUNST_PICK_FILE="$WORK/dunst-pick" DUNST_MENU_LOG="$WORK/dunst-menu.txt"
: >"$DUNST_PICK_FILE"

dunst -config "$WORK/dunstrc" >"$ARTIFACTS/dunst.log" 2>&1 &
DUNST_PID=$!
PIDS+=("$DUNST_PID")

trayer --edge bottom --align right --widthtype request --height 32 --SetDockType true \
    --SetPartialStrut false --expand true --transparent false --tint 0x404040 \
    >"$ARTIFACTS/trayer.log" 2>&1 &
TRAYER_PID=$!
PIDS+=("$TRAYER_PID")

notifications_owned() {
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Notifications 2>/dev/null |
        grep -q 'boolean true'
}

tray_owned() {
    "$PY" - <<'PYEOF' 2>/dev/null
import sys
import Xlib.display

d = Xlib.display.Display()
sys.exit(0 if d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0")) else 1)
PYEOF
}

ready=
for _ in $(seq 100); do
    kill -0 "$DUNST_PID" 2>/dev/null || break
    if notifications_owned; then ready=1; break; fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    cat "$ARTIFACTS/dunst.log" >&2
    fail "dunst did not take org.freedesktop.Notifications within 10 s (log above)"
fi

ready=
for _ in $(seq 100); do
    kill -0 "$TRAYER_PID" 2>/dev/null || break
    if tray_owned; then ready=1; break; fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    cat "$ARTIFACTS/trayer.log" >&2
    fail "trayer did not own _NET_SYSTEM_TRAY_S0 within 10 s (log above)"
fi

echo "desktop-session: ready on DISPLAY=$DISPLAY: dunst (pid $DUNST_PID), trayer (pid $TRAYER_PID)"

cd "$ROOT" || fail "cannot cd to $ROOT"
"$PY" -m pytest "$@"
rc=$?
exit "$rc"
