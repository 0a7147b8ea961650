#!/usr/bin/env bash
# Smoke test of the built macOS app on a release runner, as a user runs it:
#
#   bash build/smoke-macos.sh "<path>/Telex Start.app" WORK_DIR
#
#   1. --self-test passes, and the pyobjus fallback is in the build;
#   2. --test-notification exits 0; the log says how the notification permission went (a runner
#      has nobody to answer the prompt: it stays unanswered, and the notice falls through);
#   3. the headless mode signs in to the local Telex stack (python -m devstack, run from this
#      checkout with the build virtualenv) over loopback and shows the notification it gets;
#   4. the desktop mode is still running after 10 s with the pystray darwin backend; a second
#      launch hands over and exits 0; opening the app again with `open` reaches it as a reopen
#      event; Quit (the Apple event a logout sends, through osascript) ends it cleanly, exit 0.
#
# Each part logs to WORK_DIR/<part>/logs/telex-start.log (TELEX_LOG_DIR); the workflow keeps
# WORK_DIR when a step fails. Any failed check ends the script with its reason and the log tail.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP=${1:?usage: bash build/smoke-macos.sh APP WORK_DIR}
WORK=${2:?usage: bash build/smoke-macos.sh APP WORK_DIR}
EXE="$APP/Contents/MacOS/telex-start"
STACK_PYTHON=${STACK_PYTHON:-$ROOT/build/.work/venv/bin/python}
BUNDLE_ID=im.telex.start
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
log=
stack_pid=
app_pid=

fail() {
    echo "::error::smoke test of $APP: $*"
    if [ -n "$log" ] && [ -f "$log" ]; then
        echo "--- last lines of $log"
        tail -n 40 "$log"
    fi
    exit 1
}

cleanup() {
    for pid in "$app_pid" "$stack_pid"; do
        [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

part() { # part NAME: a fresh config and log dir for the next part
    echo "==> $1"
    export TELEX_CONFIG_DIR="$WORK/$1/config" TELEX_LOG_DIR="$WORK/$1/logs"
    mkdir -p "$TELEX_CONFIG_DIR" "$TELEX_LOG_DIR"
    log="$TELEX_LOG_DIR/telex-start.log"
}

within() { # within SECONDS COMMAND...: its exit code, or 124 when it had to be killed
    local seconds=$1 pid watchdog rc=0
    shift
    "$@" &
    pid=$!
    (sleep "$seconds" && kill -9 "$pid" 2>/dev/null) &
    watchdog=$!
    wait "$pid" || rc=$?
    kill "$watchdog" 2>/dev/null || true
    wait "$watchdog" 2>/dev/null || true
    if [ "$rc" -eq 137 ]; then return 124; fi
    return "$rc"
}

wait_for_log() { # wait_for_log SECONDS PATTERN [PID]: the log has a line matching PATTERN
    local deadline=$((SECONDS + $1))
    while [ "$SECONDS" -lt "$deadline" ]; do
        grep -Eq -- "$2" "$log" 2>/dev/null && return 0
        if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then break; fi
        sleep 0.5
    done
    fail "no line matching '$2' in the log within $1 s"
}

[ -x "$EXE" ] || fail "no executable at $EXE"

part self-test
rc=0
within 120 "$EXE" --self-test --api-url "${SELF_TEST_API_URL:-https://api.github.com}" \
    >"$WORK/self-test.json" || rc=$?
cat "$WORK/self-test.json"
[ "$rc" -eq 0 ] || fail "--self-test exited $rc"
"$STACK_PYTHON" - "$WORK/self-test.json" <<'EOF' || fail "the pyobjus fallback is not in the build"
import json, sys
sys.exit(json.load(open(sys.argv[1]))["optional_fallbacks"].get("pyobjus") != "imported")
EOF

part test-notification
rc=0
within 60 "$EXE" --test-notification || rc=$?
grep -E "Notification permission|Test notification|notifier" "$log" || true
[ "$rc" -eq 0 ] || fail "--test-notification exited $rc"
grep -q "Notification permission: " "$log" || fail "the log does not say how the permission went"

part headless
(cd "$ROOT" && exec "$STACK_PYTHON" -m devstack --events-every 1) >"$WORK/stack.txt" 2>&1 &
stack_pid=$!
for _ in $(seq 60); do
    grep -q "^  Account:" "$WORK/stack.txt" && break
    kill -0 "$stack_pid" 2>/dev/null || break
    sleep 0.5
done
api=$(sed -n 's/^  API: *//p' "$WORK/stack.txt")
ws=$(sed -n 's/.*(or directly \(ws:[^)]*\)).*/\1/p' "$WORK/stack.txt")
account=$(sed -n 's/^  Account: *//p' "$WORK/stack.txt")
if [ -z "$api" ] || [ -z "$ws" ] || [ -z "$account" ]; then
    fail "the local stack did not start: $(cat "$WORK/stack.txt")"
fi
printf '%s\n' "${account#* / }" | "$EXE" --headless --email "${account%% / *}" --password-stdin \
    --api-url "$api" --ws-url "$ws" --log-level DEBUG 2>"$WORK/headless-stderr.txt" &
app_pid=$!
wait_for_log 60 "State: connected" "$app_pid"
wait_for_log 60 "Notification (NOT )?shown" "$app_pid"
grep -E "Notification (NOT )?shown" "$log"
grep -q "Notification shown" "$log" || fail "the headless mode got the message but showed nothing"
kill -TERM "$app_pid" # the headless mode stops on SIGTERM like on Ctrl-C
rc=0
wait "$app_pid" || rc=$?
app_pid=
[ "$rc" -eq 0 ] || fail "the headless mode exited $rc on SIGTERM: $(cat "$WORK/headless-stderr.txt")"
kill -TERM "$stack_pid"
wait "$stack_pid" || true
stack_pid=

part desktop
"$EXE" &
app_pid=$!
sleep 10
kill -0 "$app_pid" 2>/dev/null || fail "the desktop mode exited within 10 s"
grep -q "Tray icon backend: pystray._darwin" "$log" || fail "no darwin tray icon in the log"
rc=0
within 30 "$EXE" || rc=$?
[ "$rc" -eq 0 ] || fail "a second launch exited $rc instead of handing over"
wait_for_log 10 "Another launch asked for: activate" "$app_pid"
open -a "$APP" # LaunchServices sends the running app a reopen event, no second process
wait_for_log 15 "macOS asked to reopen" "$app_pid"
quit=0
osascript -e "tell application id \"$BUNDLE_ID\" to quit" || quit=$?
if [ "$quit" -ne 0 ]; then
    echo "::warning::osascript could not send Quit ($quit); asking with SIGTERM instead"
    kill -TERM "$app_pid"
fi
deadline=$((SECONDS + 20))
while kill -0 "$app_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
kill -0 "$app_pid" 2>/dev/null && fail "the app did not exit within 20 s of being asked to"
rc=0
wait "$app_pid" || rc=$?
app_pid=
[ "$rc" -eq 0 ] || fail "the desktop mode exited $rc"
grep -q "Command: exit" "$log" || fail "the app ended without its clean exit"
[ "$quit" -ne 0 ] || grep -q "macOS asked Telex Start to quit" "$log" ||
    fail "Quit did not reach ::tk::mac::Quit"
echo "==> $APP: smoke test passed"
