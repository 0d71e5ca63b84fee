"""compare.png (matplotlib, when installed) and compare.html (self-contained: table + inline SVG charts)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Optional

from engine.compare.table import COLUMNS, base_line, cells

BAR_CHARTS = (("held-out loss", "heldout_loss", "lower is better"), ("trainable parameters", "trainable_params", "log scale"),
              ("peak memory (GB)", "peak_memory_gb", ""), ("tokens/s", "tokens_per_s", "higher is faster"))


def write_png(rows, path: Path) -> Optional[Path]:
    """Loss curves and bars of held-out loss, trainable parameters and peak memory; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    done = [r for r in rows if r.status == "completed"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    for r in done:
        if r.losses:
            ax.plot([s for s, _ in r.losses], [v for _, v in r.losses], label=r.method)
    ax.set_title("training loss")
    ax.set_xlabel("step")
    ax.legend(fontsize=7, ncol=2)
    for ax, (title, key, note) in zip((axes[0][1], axes[1][0], axes[1][1]), BAR_CHARTS[:3]):
        have = [r for r in done if getattr(r, key) is not None]
        ax.barh([r.method for r in have], [getattr(r, key) for r in have], color="#4C72B0")
        ax.set_title(f"{title} ({note})" if note else title)
        if key == "trainable_params":
            ax.set_xscale("log")
        ax.invert_yaxis()
    if done and done[0].base_heldout_loss is not None:
        axes[0][1].axvline(done[0].base_heldout_loss, color="#C44E52", linestyle="--", label="base model")
        axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.partial.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _svg_bars(rows, key: str, title: str, note: str) -> str:
    have = [r for r in rows if r.status == "completed" and getattr(r, key) is not None]
    if not have:
        return ""
    import math

    log = key == "trainable_params"
    vals = [math.log10(max(getattr(r, key), 1)) if log else getattr(r, key) for r in have]
    top = max(vals) or 1.0
    h, w, label_w = 18 * len(have) + 30, 560, 130
    bars = []
    for i, (r, v) in enumerate(zip(have, vals)):
        y = 24 + i * 18
        width = max(1.0, (w - label_w - 70) * v / top)
        shown = getattr(r, key)
        text = f"{shown:.3g}" if isinstance(shown, float) else f"{shown:,}"
        bars.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-size="12">{html.escape(r.method)}</text>'
                    f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="14" fill="#4C72B0"/>'
                    f'<text x="{label_w + width + 4:.1f}" y="{y + 12}" font-size="11">{text}</text>')
    heading = f"{title}" + (f" ({note})" if note else "")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><text x="4" y="15" font-size="13" '
            f'font-weight="bold">{html.escape(heading)}</text>{"".join(bars)}</svg>')


def write_html(rows, meta: dict, path: Path, png: Optional[Path]) -> Path:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells(r)) + "</tr>" for r in rows)
    charts = "".join(_svg_bars(rows, key, title, note) for title, key, note in BAR_CHARTS)
    image = ""
    if png is not None and png.is_file():
        image = f'<img alt="loss curves" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
    setup = html.escape(", ".join(f"{k}: {v}" for k, v in meta.items() if v not in (None, "", 0)))
    doc = (f"<!doctype html><meta charset='utf-8'><title>edgetune compare</title><style>body{{font-family:sans-serif;"
           f"margin:24px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}"
           f"svg{{display:block;margin:12px 0}}</style><h2>edgetune compare</h2><p>{setup}</p><table><tr>{head}</tr>{body}"
           f"</table><p>{html.escape(base_line(rows))}</p>{charts}{image}")
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
