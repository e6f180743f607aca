"""The README's two pictures (docs/img/) made from the browser tests' screenshots
(bench/screenshots/, git-ignored): cropped to what they show, shrunk to a width a README
displays and stored as palette PNGs, so each stays far below ~250 KB.
`python -m olist_dev.screenshots` after `pytest tests/browser`."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageChops

from olist_dev.settings import REPO_ROOT

SCREENSHOTS = REPO_ROOT / "bench" / "screenshots"
README_IMAGES = REPO_ROOT / "docs" / "img"
# The dashboard (tests/browser/test_dashboard.py) and the global lineage (test_dagster_ui.py).
PICTURES = ("dashboard.png", "lineage.png")
WIDTH = 1000
MARGIN = 16


def content_box(image: Image.Image, tolerance: int = 12, margin: int = MARGIN) -> tuple:
    """(left, top, right, bottom) of what differs from the top-left pixel's colour (the page's
    background) by more than ``tolerance``, widened by ``margin`` and kept inside the image."""
    rgb = image.convert("RGB")
    background = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
    diff = (
        ImageChops.difference(rgb, background)
        .convert("L")
        .point(lambda v: 255 if v > tolerance else 0)
    )
    box = diff.getbbox()
    if box is None:
        return (0, 0, *rgb.size)
    left, top, right, bottom = box
    width, height = rgb.size
    return (max(left - margin, 0), max(top - margin, 0),
            min(right + margin, width), min(bottom + margin, height))  # fmt: skip


def readme_image(source: Path, target: Path, width: int = WIDTH) -> int:
    """``source`` cropped to its content, at most ``width`` pixels wide, as a 256-colour PNG in
    ``target``; returns its size in bytes."""
    with Image.open(source) as image:
        picture = image.convert("RGB").crop(content_box(image))
    if picture.width > width:
        picture = picture.resize(
            (width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target.stat().st_size


def main() -> int:
    missing = [name for name in PICTURES if not (SCREENSHOTS / name).exists()]
    if missing:
        print(
            f"olist: error: no {', '.join(missing)} in {SCREENSHOTS}: run "
            "`.venv/bin/pytest tests/browser` first",
            file=sys.stderr,
        )
        return 1
    for name in PICTURES:
        size = readme_image(SCREENSHOTS / name, README_IMAGES / name)
        print(f"{README_IMAGES / name}: {size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
