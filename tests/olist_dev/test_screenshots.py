"""The README's pictures: cropped to their content, shrunk to the README's width, small PNGs."""

from __future__ import annotations

from PIL import Image, ImageDraw

from olist_dev.screenshots import content_box, readme_image


def page_with_a_box(size=(800, 600), box=(100, 200, 300, 260)) -> Image.Image:
    image = Image.new("RGB", size, (250, 250, 250))
    ImageDraw.Draw(image).rectangle(box, fill=(0, 100, 200))
    return image


def test_content_box_is_what_differs_from_the_background_plus_a_margin():
    image = page_with_a_box()
    assert content_box(image, margin=0) == (100, 200, 301, 261)
    assert content_box(image, margin=16) == (84, 184, 317, 277)
    # The margin stops at the edges; a blank page is kept whole.
    corner = page_with_a_box(box=(780, 580, 799, 599))
    assert content_box(corner, margin=16) == (764, 564, 800, 600)
    assert content_box(Image.new("RGB", (50, 40), "white")) == (0, 0, 50, 40)


def test_readme_image_is_cropped_shrunk_and_small(tmp_path):
    source, target = tmp_path / "shot.png", tmp_path / "img" / "shot.png"
    page_with_a_box(size=(3000, 2000), box=(100, 100, 2900, 1500)).save(source)
    size = readme_image(source, target, width=1000)
    with Image.open(target) as picture:
        assert picture.width == 1000
        assert picture.height == round((1500 - 100 + 1 + 32) * 1000 / (2900 - 100 + 1 + 32))
        assert picture.mode == "P"  # palette PNG
    assert size == target.stat().st_size < 250 * 1024
