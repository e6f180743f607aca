"""Tiny pictures for asset metadata, with no plotting library: an SVG sparkline as a markdown
image whose source is a `data:` URI (the Dagster UI renders it inline)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from xml.sax.saxutils import escape


def sparkline_svg(values: Sequence[float], width: int = 240, height: int = 48, pad: int = 3) -> str:
    """An SVG polyline of ``values`` (left to right), scaled to fill the box; a flat line when
    they are all equal, an empty box when there are none."""
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    span = (high - low) or 1.0
    step = inner_w / (len(values) - 1) if len(values) > 1 else 0.0
    points = " ".join(
        f"{pad + i * step:.1f},{pad + inner_h - (v - low) / span * inner_h:.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<polyline fill="none" stroke="#4f43dd" stroke-width="1.5" points="{points}"/></svg>'
    )


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def markdown_image(alt: str, svg: str) -> str:
    return f"![{escape(alt)}]({svg_data_uri(svg)})"
