"""Wrap the one-dir Linux build (dist/telex-start-onedir) in a .deb and an .rpm.

    python build/linux/package.py [--onedir DIR] [--dist DIR] [--work DIR]

``bash build/linux.sh`` runs it after PyInstaller, with the build virtualenv's Python (stdlib plus
``packaging``). It stages one tree and hands it to the real tools: ``dpkg-deb`` and ``rpmbuild``
(on Debian/Ubuntu: the ``rpm`` package); ``dpkg-shlibdeps`` (``dpkg-dev``) finds the libraries the
system must provide. What the packages install:

    /usr/lib/telex-start/                        the frozen app (PyInstaller one-dir)
    /usr/bin/telex-start                         symlink to it
    /usr/share/applications/im.telex.start.desktop
    /usr/share/metainfo/im.telex.start.metainfo.xml
    /usr/share/icons/hicolor/<n>x<n>/apps/im.telex.start.png   (build/make_icons.py)
    /usr/share/man/man1/telex-start.1.gz         generated from ``telex-start --help``
    /usr/share/doc/telex-start/{copyright,changelog.Debian.gz}   .deb
    /usr/share/lintian/overrides/telex-start                     .deb (a reason for each)
    /usr/share/licenses/telex-start/copyright                    .rpm

The app lives in /usr/lib/telex-start rather than /opt: Debian policy and Fedora's guidelines
keep packages out of /opt (lintian: dir-or-file-in-opt, an error). No maintainer scripts: the
icon cache and the desktop database are refreshed by the triggers of the packages that own them,
and the start-at-login entry is the user's (written by the app, in the user's home), never the
package's. Versions come from ``app.__version__``; every file time, the changelog dates and the
rpm build time from ``SOURCE_DATE_EPOCH``, else the time of the last commit.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "build" / "linux"
sys.path.insert(0, str(ROOT))

from packaging.version import Version  # noqa: E402  (after the path set-up, as in the spec)

from app import __version__  # noqa: E402
from app.constants import APP_ID, APP_NAME, APP_SLUG  # noqa: E402

PACKAGE = APP_SLUG
APP_DIR = f"/usr/lib/{PACKAGE}"
RELEASE = "1"  # packaging revision: the Debian revision and the rpm Release
#: A placeholder, like SECURITY.md's address: replace it with a monitored one before the first
#: public release (TELEX_PACKAGE_MAINTAINER overrides it for a build).
MAINTAINER = os.environ.get("TELEX_PACKAGE_MAINTAINER") or "Telex <packages@telex.im>"
HOMEPAGE = "https://telex.im"
SUMMARY = "tray notifier for Telex conversations"
DESCRIPTION = (
    f"{APP_NAME} sits in the system tray, keeps you signed in to Telex and connected to "
    "Telex's push server, and shows a desktop notification when a conversation gets new "
    "messages, even while the full Telex app is closed.",
    "It needs a notification service (every desktop has one) and a system tray that shows "
    "XEmbed icons; on GNOME Shell that is the AppIndicator extension.",
)
#: Recommended and suggested packages, per format. Debian: ``notification-daemon`` is the virtual
#: package every notification server provides (dunst, gnome-shell, plasma-workspace, xfce4-notifyd
#: ...); Fedora's virtual provide for the same is ``desktop-notification-daemon``. GNOME Shell has
#: no XEmbed tray of its own: the AppIndicator extension shows such icons.
DEB_RECOMMENDS = "notification-daemon"
DEB_SUGGESTS = "gnome-shell-extension-appindicator"
RPM_RECOMMENDS = "desktop-notification-daemon"
RPM_SUGGESTS = "gnome-shell-extension-appindicator"
#: The app's own licence is not chosen yet (see build/linux/copyright); the rest are those of the
#: bundled components listed there.
RPM_LICENSE = (
    "LicenseRef-Telex-Start-unlicensed AND PSF-2.0 AND Apache-2.0 AND MIT AND BSD-3-Clause AND "
    "BSD-2-Clause AND MIT-CMU AND MPL-2.0 AND LGPL-3.0-only AND LGPL-2.1-or-later AND TCL AND "
    "Zlib AND Libpng AND FTL AND GPL-3.0-or-later WITH GCC-exception-3.1"
)
CHANGE = f"{APP_NAME} {{version}}, packaged from the release build."


def distro_version(version: str) -> str:
    """A PEP 440 version in the form dpkg and rpm both sort right: pre-releases sort before the
    release with ``~`` (1.0~rc1 < 1.0), post-releases after it with ``+``."""
    parsed = Version(version)
    text = ".".join(str(part) for part in parsed.release)
    if parsed.pre is not None:
        text += f"~{parsed.pre[0]}{parsed.pre[1]}"
    if parsed.dev is not None:
        text += f"~dev{parsed.dev}"
    if parsed.post is not None:
        text += f"+post{parsed.post}"
    return text


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    if shutil.which("git") is None:
        return 0
    proc = run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], check=False)
    return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else 0


def run(
    argv: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    *,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a build tool (found on PATH, as the build scripts find theirs) and capture its output;
    stop the build with its stderr when it fails."""
    proc = subprocess.run(  # noqa: S603  (fixed argument lists, no shell)
        argv, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"package.py: {argv[0]} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


# -- the man page -----------------------------------------------------------------------------


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("…", "...").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def help_options(help_text: str) -> list[tuple[str, str]]:
    """(option, description) pairs from argparse's ``--help`` output."""
    options: list[tuple[str, str]] = []
    in_options = False
    for line in help_text.splitlines():
        if line.rstrip().endswith(":") and not line.startswith(" "):
            in_options = line.strip() in ("options:", "optional arguments:")
            continue
        if not in_options or not line.strip():
            continue
        if re.match(r"^  -", line):
            head, _, rest = line.strip().partition("  ")
            options.append((head.strip(), rest.strip()))
        elif options:
            option, desc = options[-1]
            options[-1] = (option, f"{desc} {line.strip()}".strip())
    return options


def man_page(help_text: str, version: str, epoch: int) -> str:
    date = time.strftime("%Y-%m-%d", time.gmtime(epoch))
    lines = [
        f'.TH {PACKAGE.upper()} 1 "{date}" "{PACKAGE} {version}" "User Commands"',
        ".SH NAME",
        f"{_roff(PACKAGE)} \\- {SUMMARY}",
        ".SH SYNOPSIS",
        f".B {_roff(PACKAGE)}",
        "[\\fIOPTION\\fR]...",
        ".SH DESCRIPTION",
        _roff(DESCRIPTION[0]),
        ".PP",
        _roff(DESCRIPTION[1]),
        ".SH OPTIONS",
    ]
    for option, desc in help_options(help_text):
        lines += [".TP", f"\\fB{_roff(option)}\\fR", _roff(desc)]
    lines += [
        ".SH FILES",
        ".TP",
        _roff(f"~/.config/{PACKAGE}/"),
        "Settings (never the password or tokens).",
        ".TP",
        _roff(f"~/.local/state/{PACKAGE}/log/"),
        "The log.",
        ".TP",
        _roff(f"~/.config/autostart/{PACKAGE}.desktop"),
        _roff(
            "Start at login, written by the app when it is turned on in its menu. The package "
            "never writes it, and removing the package leaves it: turn it off first."
        ),
        ".SH SEE ALSO",
        _roff(HOMEPAGE),
        "",
    ]
    return "\n".join(lines)


def gzip_file(data: bytes, dest: Path) -> None:
    """gzip -9n: no name and no time stamp in the header."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)


# -- the tree both packages install -------------------------------------------------------------


def tidy_libraries(app_dir: Path) -> None:
    """The bundled shared libraries as a distribution ships them: no search path that points
    outside the bundle (the build interpreter's lib dir, e.g. /root/.pyenv/.../lib, which the
    copies carry from their build; ``$ORIGIN`` paths inside the bundle stay, Pillow's libraries
    find each other through them), and no debug symbols. The executable is left as PyInstaller
    made it."""
    libraries = sorted(p for p in app_dir.rglob("*.so*") if p.is_file() and is_elf(p))
    for library in libraries:
        dynamic = run(["readelf", "-d", str(library)]).stdout
        paths = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[(.*)\]", dynamic)
        if any(not entry.startswith("$ORIGIN") for path in paths for entry in path.split(":")):
            run(["chrpath", "-d", str(library)])
    run(
        ["strip", "--strip-unneeded", "--remove-section=.comment", "--remove-section=.note"]
        + [str(p) for p in libraries]
    )


def stage(onedir: Path, root: Path, version: str, epoch: int) -> None:
    app_dir = root / APP_DIR.lstrip("/")
    shutil.copytree(onedir, app_dir, symlinks=True)
    for path in [app_dir, *app_dir.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        elif is_elf(path) and ".so" not in path.name and path.stat().st_mode & stat.S_IXUSR:
            path.chmod(0o755)  # the executable; shared libraries are 0644 (Debian policy 10.9)
        else:
            path.chmod(0o644)

    tidy_libraries(app_dir)

    share = root / "usr/share"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin" / PACKAGE).symlink_to(f"../lib/{PACKAGE}/{PACKAGE}")
    (share / "applications").mkdir(parents=True)
    shutil.copyfile(HERE / f"{APP_ID}.desktop", share / "applications" / f"{APP_ID}.desktop")
    metainfo = (HERE / f"{APP_ID}.metainfo.xml").read_text(encoding="utf-8")
    metainfo = metainfo.replace("@VERSION@", version)
    metainfo = metainfo.replace("@DATE@", time.strftime("%Y-%m-%d", time.gmtime(epoch)))
    (share / "metainfo").mkdir()
    (share / "metainfo" / f"{APP_ID}.metainfo.xml").write_text(metainfo, encoding="utf-8")
    shutil.copytree(HERE / "icons" / "hicolor", share / "icons" / "hicolor")

    usage = run([str(app_dir / PACKAGE), "--help"], env={**os.environ, "COLUMNS": "1000"}).stdout
    page = man_page(usage, version, epoch)
    gzip_file(page.encode("utf-8"), share / "man" / "man1" / f"{PACKAGE}.1.gz")


def finish_tree(root: Path, epoch: int) -> None:
    """Modes for the non-app files and one time stamp for everything (reproducible payloads)."""
    app_dir = root / APP_DIR.lstrip("/")
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.is_symlink() and app_dir not in (path, *path.parents):
            path.chmod(0o755 if path.is_dir() else 0o644)
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def copy_stage(common: Path, dest: Path) -> None:
    shutil.copytree(common, dest, symlinks=True)


# -- .deb --------------------------------------------------------------------------------------


def deb_depends(work: Path, tree: Path) -> str:
    """What the system must provide, by dpkg-shlibdeps: only libraries the bundle does not carry
    (the bundle's own are found through -l and carry no shlibs information, hence
    --ignore-missing-info)."""
    elfs = [str(p.relative_to(work)) for p in tree.rglob("*") if p.is_file() and is_elf(p)]
    proc = run(
        ["dpkg-shlibdeps", "-O", "--ignore-missing-info", f"-l{APP_DIR}/_internal", *elfs],
        cwd=work,
    )
    match = re.search(r"^shlibs:Depends=(.*)$", proc.stdout, re.MULTILINE)
    if match is None:
        raise SystemExit(f"package.py: no shlibs:Depends from dpkg-shlibdeps:\n{proc.stdout}")
    return match.group(1).strip()


def installed_size_kib(tree: Path) -> int:
    """As dpkg-gencontrol counts it: 1 KiB per directory and symlink, file sizes rounded up."""
    total = 0
    for path in tree.rglob("*"):
        if "DEBIAN" in path.relative_to(tree).parts:
            continue
        total += 1 if path.is_dir() or path.is_symlink() else -(-path.stat().st_size // 1024)
    return total


def build_deb(common: Path, work: Path, dist: Path, version: str, epoch: int) -> Path:
    # dpkg-shlibdeps wants debian/control and the tree at debian/<package>/ with a DEBIAN dir.
    debian = work / "debian"
    tree = debian / PACKAGE
    copy_stage(common, tree)
    (debian / "control").write_text(
        f"Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n", encoding="utf-8"
    )
    doc = tree / "usr/share/doc" / PACKAGE
    doc.mkdir(parents=True)
    shutil.copyfile(HERE / "copyright", doc / "copyright")
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))
    changelog = (
        f"{PACKAGE} ({version}-{RELEASE}) stable; urgency=medium\n\n"
        f"  * {CHANGE.format(version=version)}\n\n"
        f" -- {MAINTAINER}  {date}\n"
    )
    gzip_file(changelog.encode("utf-8"), doc / "changelog.Debian.gz")
    overrides = tree / "usr/share/lintian/overrides"
    overrides.mkdir(parents=True)
    shutil.copyfile(HERE / "lintian-overrides", overrides / PACKAGE)
    (tree / "DEBIAN").mkdir()
    finish_tree(tree, epoch)

    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    description = "\n .\n".join(
        "\n".join(f" {line}" for line in textwrap.wrap(paragraph, 72)) for paragraph in DESCRIPTION
    )
    control = (HERE / "control.in").read_text(encoding="utf-8")
    fields = {
        "PACKAGE": PACKAGE,
        "VERSION": f"{version}-{RELEASE}",
        "ARCH": arch,
        "MAINTAINER": MAINTAINER,
        "INSTALLED_SIZE": str(installed_size_kib(tree)),
        "DEPENDS": deb_depends(work, tree),
        "RECOMMENDS": DEB_RECOMMENDS,
        "SUGGESTS": DEB_SUGGESTS,
        "HOMEPAGE": HOMEPAGE,
        "SUMMARY": SUMMARY,
        "DESCRIPTION": description,
    }
    control = fill(control, fields)
    (tree / "DEBIAN" / "control").write_text(control, encoding="utf-8")
    sums = []
    for path in sorted(tree.rglob("*")):
        relative = path.relative_to(tree)
        if path.is_file() and not path.is_symlink() and relative.parts[0] != "DEBIAN":
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}\n")  # noqa: S324
    (tree / "DEBIAN" / "md5sums").write_text("".join(sums), encoding="utf-8")
    for name in ("control", "md5sums"):
        (tree / "DEBIAN" / name).chmod(0o644)
        os.utime(tree / "DEBIAN" / name, (epoch, epoch))

    deb = dist / f"{PACKAGE}_{version}-{RELEASE}_{arch}.deb"
    run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree), str(deb)],
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )
    return deb


# -- .rpm --------------------------------------------------------------------------------------


def bundled_sonames(tree: Path) -> list[str]:
    """The bundle's libraries (PyInstaller names its copies by their soname), not its Python
    extension modules, which nothing links against."""
    libraries = (tree / APP_DIR.lstrip("/")).rglob("lib*.so*")
    return sorted({p.name for p in libraries if p.is_file() and ".cpython-" not in p.name})


def rpm_regex(name: str) -> str:
    """``name`` as a literal in a regex that survives rpm's macro expansion (which eats the
    backslash of ``\\+``): specials go in brackets."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"[{m.group()}]", name)


def build_rpm(common: Path, work: Path, dist: Path, version: str, epoch: int) -> Path:
    tree = work / "root"
    copy_stage(common, tree)
    licenses = tree / "usr/share/licenses" / PACKAGE
    licenses.mkdir(parents=True)
    shutil.copyfile(HERE / "copyright", licenses / "copyright")
    finish_tree(tree, epoch)

    arch = run(["uname", "-m"]).stdout.strip()
    date = time.strftime("%a %b %d %Y", time.gmtime(epoch))
    fields = {
        "PACKAGE": PACKAGE,
        "VERSION": version,
        "RELEASE": RELEASE,
        "SUMMARY": SUMMARY[0].upper() + SUMMARY[1:],
        "LICENSE": RPM_LICENSE,
        "HOMEPAGE": HOMEPAGE,
        "ARCH": arch,
        "RECOMMENDS": RPM_RECOMMENDS,
        "SUGGESTS": RPM_SUGGESTS,
        "APP_DIR": APP_DIR,
        "APP_ID": APP_ID,
        "BUNDLED": "|".join(rpm_regex(name) for name in bundled_sonames(tree)),
        "DESCRIPTION": "\n\n".join(textwrap.fill(p, 79) for p in DESCRIPTION),
        "STAGE": str(tree),
        "CHANGELOG": (
            f"* {date} {MAINTAINER} - {version}-{RELEASE}\n- {CHANGE.format(version=version)}"
        ),
    }
    spec = work / f"{PACKAGE}.spec"
    spec.write_text(fill((HERE / f"{PACKAGE}.spec.in").read_text(encoding="utf-8"), fields))
    topdir = work / "rpmbuild"
    run(
        [
            "rpmbuild",
            "-bb",
            "--target",
            arch,
            "--define",
            f"_topdir {topdir}",
            "--define",
            f"_rpmdir {dist}",
            "--define",
            "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
            "--define",
            "use_source_date_epoch_as_buildtime 1",
            "--define",
            "clamp_mtime_to_source_date_epoch 1",
            str(spec),
        ],
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )
    return dist / f"{PACKAGE}-{version}-{RELEASE}.{arch}.rpm"


def fill(template: str, fields: dict[str, str]) -> str:
    def field(match: re.Match[str]) -> str:
        return fields[match.group(1)]

    return re.sub(r"@([A-Z_]+)@", field, template)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onedir", type=Path, default=ROOT / "dist" / f"{PACKAGE}-onedir")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / ".work" / "packages")
    args = parser.parse_args(argv)
    if not (args.onedir / PACKAGE).is_file():
        raise SystemExit(f"package.py: no one-dir build at {args.onedir} (bash build/linux.sh)")
    version = distro_version(__version__)
    epoch = source_date_epoch()
    work: Path = args.work
    if work.exists():
        shutil.rmtree(work)
    common = work / "common"
    stage(args.onedir, common, version, epoch)
    args.dist.mkdir(parents=True, exist_ok=True)
    for old in [*args.dist.glob(f"{PACKAGE}_*.deb"), *args.dist.glob(f"{PACKAGE}-*.rpm")]:
        old.unlink()
    deb = build_deb(common, work / "deb", args.dist, version, epoch)
    rpm = build_rpm(common, work / "rpm", args.dist, version, epoch)
    for package in (deb, rpm):
        print(f"{package} ({package.stat().st_size} bytes)")  # noqa: T201


if __name__ == "__main__":
    main()
