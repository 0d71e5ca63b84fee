"""One training sample as the model sees it: trained tokens highlighted, masked ones greyed.

Masked parts (label -100: system prompt, user turns, template markup) carry no
loss; trained parts (the assistant's answer and its end-of-turn token) do. A
missing EOS or a wrong template is obvious at a glance.
"""

from __future__ import annotations

import html

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QTextBrowser

# Qt rich text knows a subset of CSS: solid colours that read on light and dark themes.
TRAINED_STYLE = "background-color:#c8f0d2; color:#0b4d1e; font-weight:bold;"
MASKED_STYLE = "color:#8b949e; font-style:italic;"


def segments_html(segments: list) -> str:
    """[(trained, text), ...] -> HTML with each run styled; whitespace and newlines kept."""
    out = []
    for trained, text in segments:
        body = html.escape(text).replace("\n", "<br>")
        out.append(f"<span style='{TRAINED_STYLE if trained else MASKED_STYLE}'>{body}</span>")
    return "".join(out)


class MaskedSampleView(QTextBrowser):
    """Shows segments; `legend` explains the two styles."""

    legend = ("<span style='" + TRAINED_STYLE + "'>trained (carries loss)</span> &nbsp; "
              "<span style='" + MASKED_STYLE + "'>masked (label -100, no loss)</span>")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setOpenLinks(False)
        self.segments: list = []

    def show_segments(self, segments: list) -> None:
        self.segments = list(segments)
        self.setHtml(f"<div style='white-space:pre-wrap'>{segments_html(self.segments)}</div>")
