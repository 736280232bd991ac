"""Candle charts as PNG images for asset metadata (matplotlib's Figure, headless: no pyplot, no global state).

matplotlib is imported when a chart is drawn, not with this module: every Dagster process loads the definitions
(the code server, each run worker and step process) and only a dbt build draws; importing it here cost every one of
them 1.5 s of start-up (``python -X importtime -c "import crypto_assets.definitions"``)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

Candle = tuple[datetime, Decimal, Decimal, Decimal, Decimal]  # minute_start, open, high, low, close


def candle_chart_png(candles_by_symbol: Mapping[str, Sequence[Candle]], title: str) -> bytes:
    """One panel of 1-minute candles per symbol (green up, red down) as PNG bytes."""
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    symbols = sorted(candles_by_symbol)
    fig = Figure(figsize=(9, 2.6 * max(1, len(symbols))), dpi=72)
    axes = fig.subplots(len(symbols), 1, squeeze=False)
    width = 0.6 / (24 * 60)  # 0.6 minute, in days
    for ax, symbol in zip(axes[:, 0], symbols):
        for minute, open_, high, low, close in candles_by_symbol[symbol]:
            x = mdates.date2num(minute) + 0.5 / (24 * 60)
            color = "#26a69a" if close >= open_ else "#ef5350"
            ax.vlines(x, float(low), float(high), color=color, linewidth=0.8)
            body = abs(float(close) - float(open_)) or max(float(high - low) * 0.01, float(close) * 1e-6)
            ax.bar(x, body, width, bottom=min(float(open_), float(close)), color=color, linewidth=0)
        ax.set_title(symbol, fontsize=9, loc="left")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # the Agg canvas, chosen by the format
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """Markdown that shows the image inline (a data URI: the metadata carries the picture itself)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
