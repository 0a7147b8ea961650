#!/usr/bin/env bash
# Telex Start: THE test command. From a fresh Debian/Ubuntu machine with Python 3.11+, it installs
# everything from nothing and runs the whole suite; when everything is installed it goes straight
# to the checks.
#
#   bash tests/run.sh                    # lint, type-check, the whole tests/ tree
#   bash tests/run.sh -k recovery -x     # extra arguments go to pytest
#   bash tests/run.sh tests/integration  # ... including which tests to run
#
# Steps: apt packages (sudo when not root) → virtualenv .venv (requirements-dev.txt) → real
# Centrifugo v6.9.1 (go install) → npm packages of the JS conformance tests → ruff check →
# ruff format --check → mypy (and over app/ for win32 and darwin) → pip-audit → the Windows and
# macOS pins resolve (pip --dry-run) → pytest inside Xvfb + a private D-Bus session with dunst
# and trayer (tests/desktop-session.sh). Exits non-zero on the first failing step; pytest collecting
# nothing (exit code 5) is a failure too.
#
# Environment: SKIP_LINT=1 skips ruff, mypy, pip-audit and the pins check, SKIP_FROZEN=1 the
# build of the frozen binary, for quick local iterations (both ignored when CI is set);
# PYTHON (interpreter for a new .venv; default: the first python3.x >= 3.11 found),
# CENTRIFUGO_BIN (use this binary if it is v6.9.1), ARTIFACTS (default <repo>/artifacts:
# screenshots, dunst/trayer/Xvfb logs, Centrifugo logs of failed tests).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CENTRIFUGO_MODULE=github.com/centrifugal/centrifugo/v6
CENTRIFUGO_VERSION=v6.9.1
# Centrifugo v6.9.1 needs Go >= 1.26. Go >= 1.21 fetches that toolchain by itself
# (GOTOOLCHAIN=auto); an older system Go (Debian 12 ships 1.19) gets this one from the Go module
# proxy, where toolchains are published as the module golang.org/toolchain.
GO_TOOLCHAIN=go1.26.8
VENV="$ROOT/.venv"
export ARTIFACTS=${ARTIFACTS:-$ROOT/artifacts}
export PIP_DISABLE_PIP_VERSION_CHECK=1

STEP=0
step() {
    STEP=$((STEP + 1))
    printf '\n\033[1m==> [%d] %s\033[0m  (t=%ds)\n' "$STEP" "$*" "$SECONDS"
}
note() { printf '    %s\n' "$*"; }
die() {
    printf '\n\033[1;31mFAILED: %s\033[0m\n' "$*" >&2
    exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is not installed"
    SUDO=(sudo)
fi

python_ok() { # python_ok PYTHON: is it Python >= 3.11?
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.14 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# ------------------------------------------------------------------------------------------------
step "System packages (apt)"
# ------------------------------------------------------------------------------------------------
# Desktop harness: Xvfb (+ xauth for xvfb-run), private session bus, dunst (notification server),
# trayer (XEmbed system tray), xdotool, ImageMagick `import` (screenshots), xdpyinfo. PyGObject
# and pycairo (the GTK/AppIndicator tray backends) come as source only: a C compiler and the
# GObject/cairo headers build them. The Linux packages: dpkg-dev, rpm and chrpath build them
# (build/linux.sh), lintian, desktop-file-utils, appstream and man-db check them.
PACKAGES=(ca-certificates dbus dbus-x11 xvfb xauth xdotool dunst libnotify-bin trayer
    imagemagick x11-utils binutils shellcheck gcc libc6-dev
    gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1 libgirepository1.0-dev libcairo2-dev pkg-config
    dpkg-dev rpm chrpath lintian desktop-file-utils appstream man-db)
BASE_PYTHON=""
if [ -x "$VENV/bin/python" ] && python_ok "$VENV/bin/python"; then
    : # the existing virtualenv is reused
elif BASE_PYTHON=$(find_python); then
    case "$(readlink -f "$BASE_PYTHON")" in
        /usr/bin/*) # a distribution Python: venv, tkinter and C headers are separate packages
            "$BASE_PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || PACKAGES+=(python3-venv)
            "$BASE_PYTHON" -c 'import tkinter' >/dev/null 2>&1 || PACKAGES+=(python3-tk)
            PACKAGES+=("python$("$BASE_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-dev")
            ;;
    esac
else
    PACKAGES+=(python3 python3-venv python3-tk python3-dev)
fi
command -v go >/dev/null 2>&1 || PACKAGES+=(golang-go)
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

MISSING=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            MISSING+=("$pkg")
    done
else
    MISSING=("${PACKAGES[@]}")
fi
if [ "${#MISSING[@]}" -eq 0 ]; then
    note "all ${#PACKAGES[@]} packages present"
elif command -v apt-get >/dev/null 2>&1; then
    note "installing: ${MISSING[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${MISSING[@]}" >/dev/null
else
    die "apt-get not found; install these packages (or their equivalents) yourself: ${MISSING[*]}"
fi

# ------------------------------------------------------------------------------------------------
step "Python virtualenv (.venv, requirements-dev.txt)"
# ------------------------------------------------------------------------------------------------
if ! { [ -x "$VENV/bin/python" ] && python_ok "$VENV/bin/python"; }; then
    BASE_PYTHON=$(find_python) || die "no Python >= 3.11 found (set PYTHON=/path/to/python3.11)"
    note "creating .venv with $BASE_PYTHON ($("$BASE_PYTHON" --version 2>&1))"
    rm -rf "$VENV"
    "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
REQ_STAMP="$VENV/.requirements-dev.sha256"
REQ_HASH=$(cat requirements-dev.txt requirements.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$REQ_STAMP" 2>/dev/null)" = "$REQ_HASH" ] && "$PY" -m pip check >/dev/null 2>&1; then
    note "requirements up to date ($("$PY" --version))"
else
    "$PY" -m pip install -q -r requirements-dev.txt
    echo "$REQ_HASH" >"$REQ_STAMP"
    note "installed requirements-dev.txt into .venv ($("$PY" --version))"
fi
export PY

# ------------------------------------------------------------------------------------------------
step "Centrifugo $CENTRIFUGO_VERSION"
# ------------------------------------------------------------------------------------------------
GO=$(command -v go) || die "go not found"
go_minor() { "$1" version | sed -n 's/^go version go1\.\([0-9]*\).*/\1/p'; }
GO_MINOR=$(go_minor "$GO")
if [ "${GO_MINOR:-99}" -lt 21 ]; then
    # No toolchain switching before Go 1.21: fetch the toolchain module ourselves.
    TOOLCHAIN_MOD="golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.$("$GO" env GOOS)-$("$GO" env GOARCH)"
    TOOLCHAIN_DIR=$(cd / && GO111MODULE=on "$GO" mod download -json "$TOOLCHAIN_MOD" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
    if [ -z "$TOOLCHAIN_DIR" ] || [ ! -f "$TOOLCHAIN_DIR/bin/go" ]; then
        die "could not download the Go toolchain $TOOLCHAIN_MOD"
    fi
    # Module zips carry no executable bits (the go command sets them when it switches itself).
    find "$TOOLCHAIN_DIR/bin" "$TOOLCHAIN_DIR/pkg/tool" -type f -exec chmod a+x {} +
    note "system $("$GO" version | cut -d' ' -f3) is too old; using $GO_TOOLCHAIN from the module proxy"
    GO="$TOOLCHAIN_DIR/bin/go"
fi
GOBIN_DIR=$("$GO" env GOBIN)
[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$("$GO" env GOPATH | cut -d: -f1)/bin"
centrifugo_version() { # the module version baked into a go-installed binary
    "$GO" version -m "$1" 2>/dev/null | awk -v m="$CENTRIFUGO_MODULE" '$1 == "mod" && $2 == m { print $3 }'
}
if [ -n "${CENTRIFUGO_BIN:-}" ] && [ -x "$CENTRIFUGO_BIN" ] &&
    [ "$(centrifugo_version "$CENTRIFUGO_BIN")" = "$CENTRIFUGO_VERSION" ]; then
    note "using CENTRIFUGO_BIN=$CENTRIFUGO_BIN"
else
    CENTRIFUGO_BIN="$GOBIN_DIR/centrifugo"
    if [ -x "$CENTRIFUGO_BIN" ] && [ "$(centrifugo_version "$CENTRIFUGO_BIN")" = "$CENTRIFUGO_VERSION" ]; then
        note "found $CENTRIFUGO_BIN"
    else
        note "go install $CENTRIFUGO_MODULE@$CENTRIFUGO_VERSION (compiles; a few minutes the first time)"
        # GOTOOLCHAIN=auto: a Go 1.21..1.25 switches itself to the Go that v6.9.1's go.mod asks for.
        GOTOOLCHAIN=auto "$GO" install "$CENTRIFUGO_MODULE@$CENTRIFUGO_VERSION"
        [ "$(centrifugo_version "$CENTRIFUGO_BIN")" = "$CENTRIFUGO_VERSION" ] ||
            die "go install did not produce $CENTRIFUGO_BIN at $CENTRIFUGO_VERSION"
    fi
fi
export CENTRIFUGO_BIN
note "CENTRIFUGO_BIN=$CENTRIFUGO_BIN"

# ------------------------------------------------------------------------------------------------
step "npm packages of the JS conformance tests"
# ------------------------------------------------------------------------------------------------
found_npm_project=
while IFS= read -r -d '' lock; do
    dir=$(dirname "$lock")
    found_npm_project=1
    if [ -f "$dir/node_modules/.package-lock.json" ] && [ "$dir/node_modules/.package-lock.json" -nt "$lock" ]; then
        note "${dir#"$ROOT"/}: node_modules up to date"
    else
        note "${dir#"$ROOT"/}: npm ci"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done < <(find "$ROOT/tests" -name node_modules -prune -o -name package-lock.json -print0)
[ -n "$found_npm_project" ] || note "none"

# ------------------------------------------------------------------------------------------------
step "Frozen Linux binary and packages (build/linux.sh -> dist/telex-start, .deb, .rpm)"
# ------------------------------------------------------------------------------------------------
# tests/packaging runs it: --version, --self-test, the archive listing and the headless flow
# against the real Centrifugo and dunst; and the .deb and .rpm (test_linux_packages.py: lintian,
# validators, dpkg -i as root, then dpkg -r). Built with the interpreter the .venv was made from.
if [ "${SKIP_FROZEN:-0}" = 1 ] && ! [[ "${CI:-}" =~ ^(1|true|yes)$ ]]; then
    note "SKIPPED (SKIP_FROZEN=1; never on CI): the frozen-binary tests use dist/telex-start as it is"
else
    PYTHON=$("$PY" -c 'import sys; print(sys._base_executable)') bash "$ROOT/build/linux.sh"
fi
export TELEX_FROZEN_BINARY="$ROOT/dist/telex-start"

if [ "${SKIP_LINT:-0}" = 1 ] && ! [[ "${CI:-}" =~ ^(1|true|yes)$ ]]; then
    step "ruff check, ruff format --check, mypy (3 platforms): SKIPPED (SKIP_LINT=1; never on CI)"
else
    step "ruff check"
    "$VENV/bin/ruff" check .
    step "ruff format --check"
    "$VENV/bin/ruff" format --check .
    step "mypy (strict, pyproject.toml)"
    "$VENV/bin/mypy"
    # The Windows and macOS branches of app/ as those platforms' type stubs see them (tests/ are
    # run on Linux only, so they are checked once, above).
    step "mypy --platform win32 app, --platform darwin app"
    "$VENV/bin/mypy" --platform win32 app
    "$VENV/bin/mypy" --platform darwin app
fi

# ------------------------------------------------------------------------------------------------
step "Dependency audit (pip-audit: requirements.txt, build/requirements-build.txt)"
# ------------------------------------------------------------------------------------------------
# Fails on a known vulnerability that has a fix. A vulnerability service that cannot be reached
# is a loud WARNING, not a pass and not a failure (AUDIT_STRICT=1 makes it fail): see
# tests/security/dependency_audit.py. Skipped with SKIP_LINT=1 (never on CI).
if [ "${SKIP_LINT:-0}" = 1 ] && ! [[ "${CI:-}" =~ ^(1|true|yes)$ ]]; then
    note "SKIPPED (SKIP_LINT=1; never on CI)"
else
    "$PY" -m tests.security.dependency_audit || die "dependency audit (see above)"
fi

# ------------------------------------------------------------------------------------------------
step "Windows and macOS pins resolve (pip install --dry-run --platform win_amd64 / macosx_11_0_arm64)"
# ------------------------------------------------------------------------------------------------
# requirements.txt and build/requirements-build.txt as each release build sees them, binary wheels
# only: see tests/packaging/platform_pins.py. Skipped with SKIP_LINT=1 (never on CI).
if [ "${SKIP_LINT:-0}" = 1 ] && ! [[ "${CI:-}" =~ ^(1|true|yes)$ ]]; then
    note "SKIPPED (SKIP_LINT=1; never on CI)"
else
    "$PY" -m tests.packaging.platform_pins || die "the Windows or macOS pins do not resolve (see above)"
fi

# ------------------------------------------------------------------------------------------------
step "pytest in Xvfb + private D-Bus session (dunst, trayer)${*:+: $*}"
# ------------------------------------------------------------------------------------------------
mkdir -p "$ARTIFACTS"
rc=0
xvfb-run -a -e "$ARTIFACTS/xvfb.log" -s "-screen 0 1280x800x24 -nolisten tcp" \
    dbus-run-session -- bash "$ROOT/tests/desktop-session.sh" "$@" || rc=$?
case "$rc" in
    0) printf '\n\033[1;32mAll checks passed\033[0m in %ds.\n' "$SECONDS" ;;
    5) die "pytest collected no tests (exit code 5)" ;;
    *) die "pytest exited with code $rc (artifacts: $ARTIFACTS)" ;;
esac
