"""Draw the Telex Start mark once and derive every icon file the app and the installers need.

Run from the repository root (``.venv/bin/python build/make_icons.py``); the outputs in
``icons/`` are committed, so builds never depend on this script. The mark is drawn with plain
shapes (no fonts) so the output is identical on every machine.

* ``telex-start.png``       256 px app / notification icon
* ``tray-<state>.png``      64 px tray images; the state shows as colour and a corner badge
* ``telex-start.ico``       Windows, 16 to 256 px
* ``telex-start.icns``      macOS, up to 1024 px
* ``build/linux/icons/hicolor/<n>x<n>/apps/im.telex.start.png``  the .deb and .rpm, at every
  size of the freedesktop hicolor theme's app icon folders (16 to 512 px)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

MASTER_SIZE = 1024
TRAY_SIZE = 64
APP_ICON_SIZE = 256
ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
# The app icon folders of the hicolor theme's index.theme (the fallback every icon theme inherits).
HICOLOR_SIZES = (16, 22, 24, 32, 36, 48, 64, 72, 96, 128, 192, 256, 512)
HICOLOR_NAME = "im.telex.start"  # the app id: desktop file, AppStream metainfo and icon agree

PURPLE_TOP = (139, 92, 246)  # #8B5CF6
PURPLE_BOTTOM = (109, 40, 217)  # #6D28D9; the middle of the gradient is Telex purple #7C3AED
GREY_TOP = (156, 163, 175)  # #9CA3AF
GREY_BOTTOM = (107, 114, 128)  # #6B7280
WHITE = (255, 255, 255, 255)
AMBER = (245, 158, 11, 255)  # #F59E0B
RED = (239, 68, 68, 255)  # #EF4444

RGB = tuple[int, int, int]


def _scaled(box: tuple[float, float, float, float], size: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    return round(left * size), round(top * size), round(right * size), round(bottom * size)


def draw_mark(size: int, top: RGB, bottom: RGB) -> Image.Image:
    """A rounded square with a vertical gradient holding a white speech bubble with a "T"."""
    gradient = Image.new("RGBA", (size, size))
    pixels = ImageDraw.Draw(gradient)
    for y in range(size):
        t = y / (size - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        pixels.line([(0, y), (size, y)], fill=(*colour, 255))

    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        _scaled((0.04, 0.04, 0.96, 0.96), size), radius=round(0.22 * size), fill=255
    )
    mark = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    mark.paste(gradient, (0, 0), mask)

    draw = ImageDraw.Draw(mark)
    draw.rounded_rectangle(
        _scaled((0.18, 0.2, 0.82, 0.68), size), radius=round(0.13 * size), fill=WHITE
    )
    draw.polygon(
        [
            (round(0.3 * size), round(0.62 * size)),
            (round(0.27 * size), round(0.82 * size)),
            (round(0.47 * size), round(0.66 * size)),
        ],
        fill=WHITE,
    )
    letter = (*bottom, 255)
    draw.rectangle(_scaled((0.33, 0.3, 0.67, 0.385), size), fill=letter)  # the T's bar
    draw.rectangle(_scaled((0.455, 0.3, 0.545, 0.6), size), fill=letter)  # and its stem
    return mark


def with_badge(image: Image.Image, colour: tuple[int, int, int, int], corner: str) -> Image.Image:
    """A dot in a corner, cut out from the mark by a transparent ring so it reads when small."""
    size = image.width
    diameter = round(0.44 * size)
    ring = round(0.06 * size)
    left = size - diameter if corner.endswith("right") else 0
    top = 0 if corner.startswith("top") else size - diameter
    box = (left, top, left + diameter - 1, top + diameter - 1)

    badged = image.copy()
    cut = Image.new("L", image.size, 255)
    ImageDraw.Draw(cut).ellipse(
        (box[0] - ring, box[1] - ring, box[2] + ring, box[3] + ring), fill=0
    )
    badged.putalpha(Image.composite(badged.getchannel("A"), cut, cut))
    ImageDraw.Draw(badged).ellipse(box, fill=colour)
    return badged


def downscale(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.Resampling.LANCZOS)


def tray_images(purple: Image.Image, grey: Image.Image) -> dict[str, Image.Image]:
    """State → 64 px tray image; badges are drawn at master size, then scaled once."""
    variants: dict[str, Callable[[], Image.Image]] = {
        "signed-out": lambda: grey,
        "connecting": lambda: with_badge(purple, AMBER, "bottom-right"),
        "connected": lambda: purple,
        "offline": lambda: with_badge(grey, AMBER, "bottom-right"),
        "unread": lambda: with_badge(purple, RED, "top-right"),
    }
    return {state: downscale(make(), TRAY_SIZE) for state, make in variants.items()}


def make_icons(out_dir: Path, hicolor_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    # Draw at 4x and scale down: Pillow does not anti-alias shapes itself.
    purple = downscale(draw_mark(MASTER_SIZE * 4, PURPLE_TOP, PURPLE_BOTTOM), MASTER_SIZE)
    grey = downscale(draw_mark(MASTER_SIZE * 4, GREY_TOP, GREY_BOTTOM), MASTER_SIZE)
    written = []

    app_icon = out_dir / "telex-start.png"
    downscale(purple, APP_ICON_SIZE).save(app_icon, optimize=True)
    written.append(app_icon)

    for state, image in tray_images(purple, grey).items():
        path = out_dir / f"tray-{state}.png"
        image.save(path, optimize=True)
        written.append(path)

    ico = out_dir / "telex-start.ico"
    downscale(purple, 256).save(ico, sizes=[(s, s) for s in ICO_SIZES])
    written.append(ico)

    icns = out_dir / "telex-start.icns"
    purple.save(icns)  # Pillow derives the 16 to 512 px (@1x/@2x) members from the 1024 px master
    written.append(icns)

    for size in HICOLOR_SIZES:
        path = hicolor_dir / f"{size}x{size}" / "apps" / f"{HICOLOR_NAME}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        downscale(purple, size).save(path, optimize=True)
        written.append(path)
    return written


def contact_sheet(paths: list[Path]) -> Image.Image:
    """All PNGs side by side on light and dark strips, to eyeball them in one picture."""
    images = [Image.open(p).convert("RGBA") for p in paths if p.suffix == ".png"]
    cell = 140
    sheet = Image.new("RGBA", (cell * len(images), cell * 2), (245, 245, 245, 255))
    ImageDraw.Draw(sheet).rectangle((0, cell, sheet.width, sheet.height), fill=(40, 40, 40, 255))
    for i, image in enumerate(images):
        thumb = ImageOps.contain(image, (96, 96)) if image.width > 96 else image
        for row in (0, 1):
            x = i * cell + (cell - thumb.width) // 2
            y = row * cell + (cell - thumb.height) // 2
            sheet.alpha_composite(thumb, (x, y))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "icons")
    parser.add_argument(
        "--hicolor-out", type=Path, default=root / "build" / "linux" / "icons" / "hicolor"
    )
    parser.add_argument("--sheet", type=Path, help="also save a contact sheet PNG here")
    args = parser.parse_args()
    written = make_icons(args.out, args.hicolor_out)
    if args.sheet is not None:
        contact_sheet(written).save(args.sheet)
    for path in written:
        print(path)  # noqa: T201  (a build script reports what it wrote)


if __name__ == "__main__":
    main()
