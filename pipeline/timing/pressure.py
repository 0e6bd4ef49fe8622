"""News pressure: how crowded a day's news was, as context for any "buried" verdict.

Following Eisensee & Strömberg (2007) in spirit: pressure is the share of the day's items taken
by its three largest stories. With stories defined by keyword rules, it can only see the
stories the rules name; say so wherever it is shown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def daily_pressure(days: pd.Series, stories: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Per day: items, the ``top`` largest stories with their counts, and pressure.

    ``days`` labels each item with its (UTC) day; ``stories`` is the boolean story matrix.
    Pressure counts an item once even when it belongs to several of the top stories.
    """
    rows = []
    for day, idx in days.groupby(days).groups.items():
        block = stories.loc[idx]
        sizes = block.sum().sort_values(ascending=False)
        leaders = [name for name, n in sizes.head(top).items() if n > 0]
        in_top = block[leaders].any(axis=1).sum() if leaders else 0
        rows.append({
            "day": day,
            "items": len(block),
            "top_stories": ", ".join(f"{n} ({int(sizes[n])})" for n in leaders),
            "pressure": in_top / len(block) if len(block) else np.nan,
        })
    return pd.DataFrame(rows).sort_values("day").reset_index(drop=True)
