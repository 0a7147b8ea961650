#!/usr/bin/env bash
# Build the macOS disk image of Telex Start:
#   1. a virtualenv with only the pinned build requirements (build/requirements-build.txt),
#   2. PyInstaller's app bundle dist/Telex Start.app (telex_start.spec; LSUIElement, bundle id),
#   3. dist/telex-start-<version>-macos-<arch>[-unsigned].dmg (the app and a link to
#      /Applications); <arch> is what the app runs on (arm64 from an Apple Silicon Mac: the
#      wheels are per architecture, so it cannot be universal2).
#
#   bash build/macos.sh [--fresh]    # --fresh recreates the virtualenv
#
# Signing and notarisation run when their credentials are in the environment (the release
# workflow sets them from secrets); without them the bundle is signed ad hoc, which runs on the
# Mac that built it but is blocked by Gatekeeper elsewhere, and the image says so in its name
# ("-unsigned": anything not signed and notarised). The last line of output is the image's path.
#   MACOS_CODESIGN_IDENTITY   "Developer ID Application: <name> (<team id>)" in a keychain
#   MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID, MACOS_NOTARY_PASSWORD (app-specific password)
# PyInstaller works in build/.work (ignored by git) and writes dist/; this script removes nothing
# outside build/.work and its own dist/ outputs: build/ holds committed files.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK="$ROOT/build/.work"
VENV="$WORK/venv"
REQUIREMENTS="$ROOT/build/requirements-build.txt"
APP="$ROOT/dist/Telex Start.app"
export PIP_DISABLE_PIP_VERSION_CHECK=1

die() {
    echo "build/macos.sh: $*" >&2
    exit 1
}

fresh=
case "${1:-}" in
    --fresh) fresh=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: bash build/macos.sh [--fresh])" ;;
esac

identity=${MACOS_CODESIGN_IDENTITY:-}
notarise=
if [ -n "${MACOS_NOTARY_APPLE_ID:-}" ] && [ -n "${MACOS_NOTARY_TEAM_ID:-}" ] &&
    [ -n "${MACOS_NOTARY_PASSWORD:-}" ]; then
    [ -n "$identity" ] || die "notarisation needs a signed app: set MACOS_CODESIGN_IDENTITY too"
    notarise=1
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys, tkinter; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is not Python >= 3.11 with tkinter (set PYTHON=/path/to/python3.11)"

start=$SECONDS
mkdir -p "$WORK"
stamp="$VENV/.build-requirements.sha256"
wanted=$({
    "$PYTHON" -VV
    cat "$REQUIREMENTS" "$ROOT/requirements.txt"
} | shasum -a 256 | cut -d' ' -f1)
if [ -n "$fresh" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] ||
    ! "$VENV/bin/python" -m pip check >/dev/null 2>&1; then
    echo "==> Build virtualenv $VENV ($("$PYTHON" --version))"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --require-virtualenv -r "$REQUIREMENTS"
    echo "$wanted" >"$stamp"
else
    echo "==> Build virtualenv $VENV is up to date"
fi

echo "==> PyInstaller (telex_start.spec)${identity:+, signing as $identity}"
# The spec reads MACOS_CODESIGN_IDENTITY: PyInstaller then signs every binary with the hardened
# runtime and a timestamp, and the bundle last (inside-out, as codesign requires).
PYINSTALLER_STRICT_BUNDLE_CODESIGN_ERROR=1 MACOS_CODESIGN_IDENTITY="$identity" \
    "$VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --workpath "$WORK/pyinstaller" --distpath "$ROOT/dist" "$ROOT/telex_start.spec"
[ -d "$APP" ] || die "PyInstaller did not produce $APP"
codesign --verify --deep --strict --verbose=2 "$APP"
version=$(cd "$ROOT" && "$VENV/bin/python" -c 'import app; print(app.__version__)')

notarise_and_staple() { # notarise_and_staple UPLOAD STAPLE_TARGET
    xcrun notarytool submit "$1" --apple-id "$MACOS_NOTARY_APPLE_ID" \
        --team-id "$MACOS_NOTARY_TEAM_ID" --password "$MACOS_NOTARY_PASSWORD" --wait
    xcrun stapler staple "$2"
}

if [ -n "$notarise" ]; then
    # The app gets its own ticket too, so it opens without a network check after being copied
    # out of the disk image.
    echo "==> Notarising the app"
    ditto -c -k --keepParent "$APP" "$WORK/notarise-app.zip"
    notarise_and_staple "$WORK/notarise-app.zip" "$APP"
    spctl --assess --type execute --verbose=2 "$APP"
fi

arch=$(lipo -archs "$APP/Contents/MacOS/telex-start")
case "$arch" in
    arm64 | x86_64) ;;
    *) arch=universal2 ;;
esac
minos=$(/usr/libexec/PlistBuddy -c "Print :LSMinimumSystemVersion" "$APP/Contents/Info.plist")
echo "==> $arch, LSMinimumSystemVersion $minos"
unsigned=-unsigned
[ -z "$notarise" ] || unsigned=

echo "==> Disk image"
DMG="$ROOT/dist/telex-start-$version-macos-$arch$unsigned.dmg"
STAGING="$WORK/dmg"
rm -rf "$STAGING"
mkdir -p "$STAGING"
ditto "$APP" "$STAGING/Telex Start.app" # ditto keeps the bundle's symlinks and attributes
ln -s /Applications "$STAGING/Applications"
rm -f "$DMG"
# hdiutil create now and then fails with "Resource busy" on hosted runners: try a few times.
for attempt in 1 2 3; do
    hdiutil create -volname "Telex Start" -srcfolder "$STAGING" -fs HFS+ -format UDZO -ov "$DMG" &&
        break
    [ "$attempt" -lt 3 ] || die "hdiutil create failed three times"
    sleep 5
done

if [ -n "$identity" ]; then
    codesign --force --timestamp --sign "$identity" "$DMG"
fi
if [ -n "$notarise" ]; then
    echo "==> Notarising the disk image"
    notarise_and_staple "$DMG" "$DMG"
    spctl --assess --type open --context context:primary-signature --verbose=2 "$DMG"
fi

signing="signed ad hoc"
[ -z "$identity" ] || signing="signed${notarise:+ and notarised}"
size=$(stat -f %z "$DMG")
echo "==> $((size / 1024 / 1024)) MiB, $signing, built in $((SECONDS - start)) s:"
echo "$DMG"
