"""The table ``make reliability`` prints: one row per scenario, the invariants' figures beside the states."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SHORT = {"edited": "ed", "failed_retryable": "retry", "failed_final": "final", "skipped_budget": "budget"}
COLUMNS = ("scenario", "mode", "images", "first run", "after reruns", "reruns", "backend calls", "max/img",
           "ledger", "possibly billed", "paid, no result", "duplicate", "lost", "peak RSS MB", "wall s", "ok")


def states(counts: dict[str, int]) -> str:
    """``{'edited': 3, 'failed_final': 1}`` -> ``3 ed, 1 final``."""
    return ", ".join(f"{n} {SHORT.get(k, k)}" for k, n in sorted(counts.items(), key=lambda kv: kv[0]) if n) or "-"


def row(result: Any) -> list[str]:
    return [result.name, result.mode, str(result.images), states(result.first), states(result.final),
            str(result.reruns), str(result.calls), str(result.max_calls_per_image), str(result.ledger_rows),
            str(result.possibly_billed), str(result.paid_without_result), str(result.duplicates), str(result.lost), f"{result.peak_rss_mb:.0f}",
            f"{result.wall_s:.1f}", "yes" if result.ok else "NO"]


def render(rows: Iterable[list[str]], columns: tuple[str, ...] = COLUMNS) -> str:
    """A Markdown table (it reads in a terminal and pastes into the README as is)."""
    rows = [list(columns), *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def render_results(results: Iterable[Any]) -> str:
    return render(row(r) for r in results)
