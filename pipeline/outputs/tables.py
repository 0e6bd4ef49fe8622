"""Plain-text tables for the terminal."""

from __future__ import annotations


def text_table(rows: list[list[str]], header: list[str]) -> list[str]:
    """Left-aligned columns, two spaces apart, indented two, a rule under the header."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    out = ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out.append("  " + "  ".join("-" * w for w in widths))
    out += ["  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return out
