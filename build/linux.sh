#!/usr/bin/env bash
# Build the Linux release downloads from a clean virtualenv that holds only the pinned build
# requirements (build/requirements-build.txt):
#
#   dist/telex-start                          one-file binary (PyInstaller), the plain download
#   dist/telex-start_<version>-1_<arch>.deb   } the one-dir build (dist/telex-start-onedir) with a
#   dist/telex-start-<version>-1.<arch>.rpm   } menu entry, icons and man page (build/linux/package.py)
#
#   bash build/linux.sh           # reuses build/.work/venv while the pins and Python are the same
#   bash build/linux.sh --fresh   # recreates that virtualenv first
#
# PyInstaller works in build/.work (ignored by git) and writes dist/. This script removes nothing
# but its own virtualenv and PyInstaller's work dir inside build/.work: build/ holds committed files.
#
# Needs Python >= 3.11 with tkinter and a shared libpython (pyenv: --enable-shared; Debian/Ubuntu:
# the libpython3.X package), and objcopy (binutils). On Debian/Ubuntu the missing packages are
# installed with apt-get (sudo when not root). PYTHON=/path/to/python3.11 picks the interpreter.
# The packages are made with dpkg-deb and dpkg-shlibdeps (dpkg-dev), rpmbuild (rpm), chrpath and
# strip (binutils).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK="$ROOT/build/.work"
VENV="$WORK/venv"
REQUIREMENTS="$ROOT/build/requirements-build.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

die() {
    echo "build/linux.sh: $*" >&2
    exit 1
}

fresh=
case "${1:-}" in
    --fresh) fresh=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: bash build/linux.sh [--fresh])" ;;
esac

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}
BASE_PYTHON=$(find_python) || die "no Python >= 3.11 found (set PYTHON=/path/to/python3.11)"

# Debian/Ubuntu packages for what is missing: venv and tkinter of a distribution Python, its
# shared libpython, and objcopy (PyInstaller appends the archive to the one-file binary with it).
packages=()
command -v objcopy >/dev/null 2>&1 || packages+=(binutils)
command -v dpkg-shlibdeps >/dev/null 2>&1 || packages+=(dpkg-dev)
command -v rpmbuild >/dev/null 2>&1 || packages+=(rpm)
command -v chrpath >/dev/null 2>&1 || packages+=(chrpath)
case "$(readlink -f "$BASE_PYTHON")" in
    /usr/bin/*)
        pyver=$("$BASE_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        "$BASE_PYTHON" -c 'import ensurepip, venv' 2>/dev/null || packages+=("python$pyver-venv")
        "$BASE_PYTHON" -c 'import tkinter' 2>/dev/null || packages+=(python3-tk)
        compgen -G "/usr/lib/*/libpython$pyver.so.1.0" >/dev/null || packages+=("libpython$pyver")
        ;;
esac
if [ "${#packages[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "install these (or your distribution's equivalents): ${packages[*]}"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "==> apt-get install ${packages[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
fi
"$BASE_PYTHON" -c 'import tkinter' 2>/dev/null || die "$BASE_PYTHON has no tkinter"

start=$SECONDS
mkdir -p "$WORK"
stamp="$VENV/.build-requirements.sha256"
wanted=$({
    "$BASE_PYTHON" -VV
    cat "$REQUIREMENTS" "$ROOT/requirements.txt"
} | sha256sum | cut -d' ' -f1)
if [ -n "$fresh" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] ||
    ! "$VENV/bin/python" -m pip check >/dev/null 2>&1; then
    echo "==> Build virtualenv $VENV ($("$BASE_PYTHON" --version))"
    rm -rf "$VENV"
    "$BASE_PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --require-virtualenv -r "$REQUIREMENTS"
    echo "$wanted" >"$stamp"
else
    echo "==> Build virtualenv $VENV is up to date"
fi

echo "==> PyInstaller (telex_start.spec)"
# pystray picks a backend while it is imported, and its xorg backend opens the X display then;
# the dummy backend lets PyInstaller's hook list every backend without a display.
PYSTRAY_BACKEND=dummy "$VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --workpath "$WORK/pyinstaller" --distpath "$ROOT/dist" "$ROOT/telex_start.spec"

binary="$ROOT/dist/telex-start"
[ -x "$binary" ] || die "PyInstaller did not produce $binary"
version=$("$binary" --version) || die "$binary --version failed"
size=$(stat -c %s "$binary")
echo "==> $binary: $version, $((size / 1024 / 1024)) MiB ($size bytes)"
onedir="$ROOT/dist/telex-start-onedir"
[ "$("$onedir/telex-start" --version)" = "$version" ] || die "$onedir/telex-start --version failed"

echo "==> .deb and .rpm (build/linux/package.py)"
"$VENV/bin/python" "$ROOT/build/linux/package.py" --onedir "$onedir" --dist "$ROOT/dist" \
    --work "$WORK/packages"
echo "==> built in $((SECONDS - start)) s"
