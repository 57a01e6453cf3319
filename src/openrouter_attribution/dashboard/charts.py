"""Charts as inline SVG, drawn on the server by pygal: no JavaScript, nothing loaded from the network.

pygal embeds a small ``<script>`` with the chart's configuration even with ``js=[]`` (its tooltips
would use it); it is removed, so a page carries no script at all (its Content-Security-Policy forbids
scripts anyway).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import pygal
from pygal.style import Style

from openrouter_attribution.dashboard.pages import Chart

__all__ = ["render_svg"]

# Importing pygal appends a sys.meta_path finder of its map plugins (pygal.maps.*, unused here) that has
# no find_spec: on Python 3.11 every later import in the process then emits an ImportWarning (an error
# where warnings are errors, as in a test suite). The app that mounts the dashboard must not pay for it.
sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__module__ != "pygal"]

_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL | re.IGNORECASE)
_STYLE = Style(background="transparent", plot_background="transparent", foreground="#334155",
               foreground_strong="#0f172a", foreground_subtle="#e2e8f0", colors=("#2563eb",),
               font_family="system-ui, sans-serif", label_font_size=11, major_label_font_size=11)  # fmt: skip


def _usd(largest: float) -> Callable[[float], str]:
    """Axis labels with as many decimals as the largest value needs (``$8.00``, ``$0.000120``)."""
    digits = 2 if largest >= 1 else 4 if largest >= 0.01 else 8
    return lambda value: f"${value:,.{digits}f}"


def render_svg(chart: Chart) -> str:
    """``chart`` as an ``<svg>`` element to place in HTML (labels escaped by pygal's XML writer)."""
    labels = [label for label, _ in chart.points]
    bar = pygal.Bar(js=[], style=_STYLE, height=260, width=900, show_legend=False, x_label_rotation=30,
                    show_minor_x_labels=len(labels) <= 16, truncate_label=-1, margin=10,
                    value_formatter=_usd(max((v for _, v in chart.points), default=0)))  # fmt: skip
    bar.x_labels = labels
    if len(labels) > 16:
        bar.x_labels_major = labels[:: max(1, len(labels) // 8)]
    top = max((value for _, value in chart.points), default=0) or 1.0
    bar.y_labels = [top * step / 4 for step in range(5)]  # five ticks, whatever the scale of the values
    bar.add(chart.title, [value for _, value in chart.points])
    svg = bar.render(is_unicode=True, disable_xml_declaration=True)
    return _SCRIPT.sub("", svg)
