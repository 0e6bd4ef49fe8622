"""The scriptable analysis: two CSV files in, one JSON document out, no database involved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.sources.csvfile import read_records
from pipeline.timestamps import iso_z, parse_times
from pipeline.timing.coincidence import DEFAULT_STEP, coincidence_test
from pipeline.timing.nulls import Coverage
from pipeline.timing.registry import make_null
from pipeline.timing.uncertainty import over_intervals


class InputError(UserError):
    pass


def read_times(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(earliest, latest, best) epoch seconds from a CSV with ts_utc and optional
    earliest_utc/latest_utc columns. Any bad row is an error naming its line."""
    rec = read_records(path, ["ts_utc"])
    f = rec.frame
    cols = {"ts_utc": parse_times(f["ts_utc"])}
    for c in ("earliest_utc", "latest_utc"):
        if c in f:
            blank = f[c].str.strip() == ""
            cols[c] = parse_times(f[c].where(~blank, f["ts_utc"]))
    problems = [f"{path}:{line}: {name}: {err}"
                for name, parsed in cols.items()
                for line, err in zip(f["_line"], parsed.error) if err]
    if problems:
        raise InputError("\n".join(problems[:20]) + (f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""))
    best = cols["ts_utc"].utc.astype("int64").to_numpy() / 1e6
    lo = cols["earliest_utc"].utc.astype("int64").to_numpy() / 1e6 if "earliest_utc" in cols else best
    hi = cols["latest_utc"].utc.astype("int64").to_numpy() / 1e6 if "latest_utc" in cols else best
    bad = np.flatnonzero((lo > best) | (best > hi))
    if bad.size:
        raise InputError(f"{path}:{f['_line'].iat[bad[0]]}: earliest_utc <= ts_utc <= latest_utc does not hold")
    return lo, hi, best


def analyze_files(releases: Path | str, announcements: Path | str, *, window_minutes: float,
                  null: str, surrogates: int, seed: int, draws: int = 100,
                  coverage: tuple[float, float] | None = None) -> dict:
    rel = read_times(releases)
    ann = read_times(announcements)
    if not len(ann[2]):
        raise InputError(f"{announcements}: no announcements")
    if coverage is None:
        coverage = (float(np.floor(ann[0].min() / DEFAULT_STEP) * DEFAULT_STEP),
                    float(np.ceil(ann[1].max() / DEFAULT_STEP) * DEFAULT_STEP + DEFAULT_STEP))
    cov = Coverage(*coverage)
    model = make_null(null)
    window_s = window_minutes * 60

    def test(r, a, s):
        return coincidence_test(r, a, window_s=window_s, null=model, coverage=cov,
                                n_surrogates=surrogates, seed=s)

    summary = over_intervals(test, rel, ann, draws=draws, seed=seed, step=DEFAULT_STEP)
    records = []
    for i in range(len(rel[2])):
        pmin, pmed, pmax = summary.pvalue_range(i)
        cmin, cmax = summary.count_range(i)
        records.append({
            "release_ts_utc": iso_z(rel[2][i]),
            "count": float(np.median(summary.counts[:, i])),
            "count_min": cmin, "count_max": cmax,
            "pvalue": None if np.isnan(pmed) else pmed,
            "pvalue_min": None if np.isnan(pmin) else pmin,
            "pvalue_max": None if np.isnan(pmax) else pmax,
        })
    pmin, pmed, pmax = summary.pvalue_range(None)
    return {
        "null": model.describe(), "window_minutes": window_minutes, "surrogates": surrogates,
        "seed": seed, "draws": summary.draws,
        "coverage": [iso_z(cov.start), iso_z(cov.end)],
        "releases": records,
        "pooled": {"statistic": float(np.median(summary.pooled_statistics)),
                   "pvalue": None if np.isnan(pmed) else pmed,
                   "pvalue_min": None if np.isnan(pmin) else pmin,
                   "pvalue_max": None if np.isnan(pmax) else pmax},
    }
