"""``stats ... --plot FILE.png``: the delivery funnel as a PNG, with why messages were lost.

Needs matplotlib (the ``bench`` extra). The figure is drawn on matplotlib's Agg canvas
directly, never through pyplot: no display, no window, no global backend switched in the
caller's process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..metrics import Reason
from ._common import UsageError
from .stats_view import by_count, count, humanize, percent

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["check_plot_path", "require_matplotlib", "write_funnel"]

_EXTRA = "pip install 'insider-webpush[bench]'"
_STEP_COLOURS = ("#1f4e79", "#2e75b6", "#2f9e8f", "#e69f00", "#c0392b")
_DROPPED_COLOUR = "#8e44ad"
_UNDELIVERED_COLOUR = "#5d6d7e"
_INSIDE = 0.55  # a bar at least this share of the widest holds its label inside


def require_matplotlib() -> None:
    """Check, before anything is sent, that matplotlib can be imported.

    Raises:
        UsageError: It cannot (the message names the extra to install).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {_EXTRA}") from None


def check_plot_path(path: str) -> None:
    """Found before anything is sent: the PNG can be written where asked.

    Raises:
        UsageError: Its name does not end in `.png`, its folder does not exist or cannot be
            written, or it is a folder.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not path.lower().endswith(".png"):  # the chart is a PNG, whatever the name says
        raise UsageError(f"--plot {path}: the chart is a PNG; name a .png file")
    if os.path.isdir(path):
        raise UsageError(f"--plot {path} is a folder; name a .png file")
    if not os.path.isdir(folder):
        raise UsageError(f"--plot {path}: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--plot {path}: the folder {folder} cannot be written")


def write_funnel(
    path: str,
    *,
    title: str,
    subtitle: str,
    funnel: Sequence[tuple[str, int]],
    dropped: Sequence[Reason] | None,
    undelivered: Sequence[Reason] | None,
    dropped_total: int | None = None,
    undelivered_total: int | None = None,
) -> None:
    """Draw the funnel (horizontal bars, targeted on top, each with its count and its share
    of the targeted) and, beside it, the dropped and undelivered reasons; write a PNG.

    Args:
        path: The PNG to write (replaced if it exists).
        title: The figure's title, e.g. the campaign's id and name.
        subtitle: A line under it, e.g. the interval.
        funnel: ``(step, count)`` pairs, as ``Overview.funnel()`` gives them.
        dropped: Why messages were dropped; None when the source gives no reasons (the
            overall metrics): the panel then says so.
        undelivered: Why sent messages were not delivered; None likewise.
        dropped_total: Messages dropped (the funnel's ``targeted - sent`` if None).
        undelivered_total: Messages not delivered (``sent - delivered`` if None).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Names and labels come from Insider: text, never mathtext ("$5 off $20" stays as it is);
    # a character the font lacks is drawn as a box, without a warning for each.
    with matplotlib.rc_context({"text.parse_math": False}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing from", UserWarning)
        counts = dict(funnel)
        targeted, sent, delivered = (counts.get(k, 0) for k in ("targeted", "sent", "delivered"))
        lost_before = dropped_total if dropped_total is not None else max(0, targeted - sent)
        lost_after = (
            undelivered_total if undelivered_total is not None else max(0, sent - delivered)
        )

        fig = Figure(figsize=(13, 6), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(f"{title}\n{subtitle}", fontsize=13, fontweight="bold")
        grid = fig.add_gridspec(2, 2, width_ratios=(1.35, 1))
        _draw_funnel(fig.add_subplot(grid[:, 0]), funnel, lost_before, lost_after)
        if dropped is None and undelivered is None:
            note = fig.add_subplot(grid[:, 1])
            note.set_axis_off()
            note.text(
                0.5,
                0.5,
                "Why messages were lost\n\n"
                f"dropped before sending: {count(lost_before)}\n"
                f"sent but not delivered: {count(lost_after)}\n\n"
                "The overall metrics give no reasons:\n"
                "`stats campaign ID` and `stats top` do.",
                ha="center",
                va="center",
                fontsize=11,
                linespacing=1.6,
                bbox={"boxstyle": "round,pad=1", "facecolor": "#f4f4f4", "edgecolor": "#bbbbbb"},
            )
        else:
            _draw_reasons(
                fig.add_subplot(grid[0, 1]),
                f"dropped before sending: {count(lost_before)}",
                dropped or (),
                _DROPPED_COLOUR,
            )
            _draw_reasons(
                fig.add_subplot(grid[1, 1]),
                f"sent but not delivered: {count(lost_after)}",
                undelivered or (),
                _UNDELIVERED_COLOUR,
            )
        fig.savefig(path, format="png", facecolor="white")


def _draw_funnel(
    ax: Axes, funnel: Sequence[tuple[str, int]], lost_before: int, lost_after: int
) -> None:
    steps = [step for step, _ in funnel]
    values = [n for _, n in funnel]
    targeted = values[0] if values else 0
    widest = max(values, default=0) or 1
    positions = list(range(len(values)))
    colours = [_STEP_COLOURS[i % len(_STEP_COLOURS)] for i in positions]
    ax.barh(positions, values, color=colours, height=0.62)
    ax.set_yticks(positions, [step for step in steps], fontsize=12)
    ax.invert_yaxis()  # targeted on top
    ax.set_xlim(0, widest * 1.02)
    ax.set_title("delivery funnel: count (share of targeted)", fontsize=12, loc="left")
    ax.tick_params(axis="x", labelsize=9)
    _thousands_axis(ax)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for y, n in zip(positions, values, strict=True):
        label = f"{count(n)}  ({percent(n / targeted) if targeted else '-'})"
        if n >= widest * _INSIDE:
            ax.text(
                n - widest * 0.01,
                y,
                label,
                va="center",
                ha="right",
                color="white",
                fontsize=12,
                fontweight="bold",
            )
        else:
            ax.text(
                n + widest * 0.01,
                y,
                label,
                va="center",
                ha="left",
                color="#222222",
                fontsize=12,
                fontweight="bold",
            )
    # What each loss is, between the bars it separates (see the panels on the right).
    # In the colour of the panel that gives its reasons.
    losses = {
        "sent": (lost_before, "dropped", _DROPPED_COLOUR),
        "delivered": (lost_after, "not delivered", _UNDELIVERED_COLOUR),
    }
    for y, step in zip(positions, steps, strict=True):
        if step in losses and y > 0 and losses[step][0]:
            lost, what, colour = losses[step]
            ax.text(
                widest * 0.99,
                y - 0.5,
                f"\N{MINUS SIGN}{count(lost)} {what}",
                va="center",
                ha="right",
                fontsize=10,
                color=colour,
                fontweight="bold",
            )


def _draw_reasons(ax: Axes, title: str, reasons: Sequence[Reason], colour: str) -> None:
    ax.set_title(title, fontsize=12, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not reasons:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "Insider gave no reasons",
            ha="center",
            va="center",
            fontsize=11,
            transform=ax.transAxes,
        )
        return
    ordered = by_count(reasons)
    positions = list(range(len(ordered)))
    values = [r.count for r in ordered]
    widest = max(values) or 1
    ax.barh(positions, values, color=colour, height=0.6)
    ax.set_yticks(positions, [humanize(r.label) for r in ordered], fontsize=10.5)
    ax.invert_yaxis()
    ax.set_xlim(0, widest * 1.45)  # room for the labels right of the widest bar
    ax.tick_params(axis="x", labelsize=8)
    _thousands_axis(ax)
    for y, reason in zip(positions, ordered, strict=True):
        ax.text(
            reason.count + widest * 0.02,
            y,
            f"{count(reason.count)} ({percent(reason.share)})",
            va="center",
            ha="left",
            fontsize=10,
        )


def _thousands_axis(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:,.0f}"))
