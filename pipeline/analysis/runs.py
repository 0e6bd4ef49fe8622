"""The ledger of analysis runs: store a run once, read it back, and the one way to analyse a
claim (prepare, skip if the run is stored, run, store) that the CLI, the DAGs and the demo share.

A run is keyed by its id (a hash of claim, parameters, data snapshot and code): storing the same
run twice adds nothing. Its ``facts`` are the whole result, so outputs render from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import numpy as np

from pipeline.analysis.analyze import PreparedClaim, prepare_claim, run_prepared
from pipeline.analysis.claims import Claim
from pipeline.analysis.results import AnalysisResult
from pipeline.store.database import transaction


def json_safe(x):
    """``x`` with numpy types made plain and NaN or infinities made None (JSON has neither)."""
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return json_safe(x.item())
    if isinstance(x, np.ndarray):
        return [json_safe(v) for v in x.tolist()]
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x


def clean_json(obj) -> str:
    """JSON without NaN or numpy types (NaN and infinities become null)."""
    return json.dumps(json_safe(obj))


def is_stored(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    return bool(con.execute("SELECT 1 FROM analysis_runs WHERE run_id = ?", [run_id]).fetchall())


def load_run(con: duckdb.DuckDBPyConnection, run_id: str) -> AnalysisResult | None:
    """A stored run as the result objects outputs read; None if unknown (or stored by a version
    that did not keep facts)."""
    rows = con.execute("SELECT facts FROM analysis_runs WHERE run_id = ?", [run_id]).fetchall()
    if not rows or rows[0][0] is None:
        return None
    return AnalysisResult.from_facts(json.loads(rows[0][0]))


def latest_runs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    """(claim_id, run_id, releases) of each claim's newest run that kept its facts."""
    return [tuple(r) for r in con.execute(
        """SELECT claim_id, run_id, json_array_length(facts -> 'releases')
           FROM analysis_runs WHERE facts IS NOT NULL
           QUALIFY row_number() OVER (PARTITION BY claim_id ORDER BY created_utc DESC, run_id) = 1
           ORDER BY claim_id""").fetchall()]


def _result_rows(result: AnalysisResult) -> list[tuple]:
    rows = []
    for s in result.streams:
        label = s.stream.spec.label
        for t in s.releases:
            rows.append((result.run_id, t.release_id, label, "count_within_window",
                         t.count_median, t.count_min, t.count_max, t.pvalue, t.pvalue_min,
                         t.pvalue_max, t.qvalue,
                         clean_json({"expected": t.expected, "testable": t.testable, "reason": t.reason,
                                     "candidate_weeks": t.candidate_weeks,
                                     "nearest_before_min": t.nearest_before_min,
                                     "nearest_after_min": t.nearest_after_min,
                                     "curated": s.stream.spec.curated})))
        rows.append((result.run_id, "pooled", label, "count_within_window", s.pooled_statistic,
                     None, None, s.pooled_pvalue, s.pooled_pvalue_min, s.pooled_pvalue_max, None,
                     clean_json({"draws": s.draws, "null": s.null_description})))
        if s.correlogram is not None:
            c = s.correlogram
            rows.append((result.run_id, "pooled", label, "correlogram_max_over_lags", c.statistic,
                         None, None, c.pvalue, None, None, None,
                         clean_json({"lags_s": c.lags_s, "counts": c.counts, "null_mean": c.null_mean,
                                     "pointwise_lo": c.pointwise_lo, "pointwise_hi": c.pointwise_hi,
                                     "global_lo": c.global_lo, "global_hi": c.global_hi,
                                     "bin_s": c.bin_s, "skipped": s.correlogram_skipped})))
    if result.displacement is not None:
        d = result.displacement
        rows.append((result.run_id, result.releases[0].event_id,
                     result.displacement_spec["news_source"], "displacement_share_difference",
                     d.difference, d.ci[0], d.ci[1], d.rank_pvalue, None, None, None,
                     clean_json({"hours": d.hours, "focal_share": d.focal_share,
                                 "others": dict(zip(d.other_ids, d.other_shares)),
                                 "skipped": d.skipped})))
    return rows


def _onset_rows(result: AnalysisResult) -> list[tuple]:
    sha = result.onsets["rules_sha256"]
    return [(result.run_id, r["story"], r["source"], r["onset_lo_utc"], r["onset_hi_utc"], r["first_title"],
             r["first_author"], r["first_url"], r["outlet2_utc"], r["outlet3_utc"], r["burst_start_utc"],
             r["n_items"], r["n_outlets"], r["anchor_event"], r["lag_minutes"], sha)
            for r in result.onsets["records"]]


def store_result(con: duckdb.DuckDBPyConnection, result: AnalysisResult) -> bool:
    """Record the run, its results and its facts. False when this exact run was already stored."""
    if is_stored(con, result.run_id):
        return False
    claim = result.claim
    with transaction(con):
        con.execute(
            """INSERT INTO analysis_runs (run_id, created_utc, claim_id, null_model, window_minutes,
                   surrogates, seed, parameters, data_snapshot, code_version, facts)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [result.run_id, result.created_utc, claim.id, claim.null, claim.window_minutes,
             result.parameters["surrogates"], result.parameters["seed"], clean_json(result.parameters),
             clean_json(result.snapshot), result.parameters["code_version"], clean_json(result.to_facts())],
        )
        con.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _result_rows(result))
        if result.onsets and result.onsets["records"]:
            con.executemany("INSERT INTO story_onsets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            _onset_rows(result))
    result.stored = True
    return True


@dataclass
class Analysed:
    result: AnalysisResult
    fresh: bool  # False: this exact run was already stored, and this is it, read back


def analyze(ws, claim: Claim, *, surrogates: int | None = None, seed: int | None = None,
            draws: int | None = None) -> Analysed:
    """Prepare the claim from the store, and run and store it unless that exact run is stored.

    The Monte Carlo runs with no connection open: other processes can read and write meanwhile.
    """
    with ws.read() as con:
        prep: PreparedClaim = prepare_claim(con, claim, surrogates=surrogates, seed=seed, draws=draws)
        stored = load_run(con, prep.run_id)
    if stored is not None:
        return Analysed(stored, fresh=False)
    result = run_prepared(prep)
    with ws.write() as con:
        fresh = store_result(con, result)
    return Analysed(result if fresh else load_run_or(result, ws), fresh)


def load_run_or(result: AnalysisResult, ws) -> AnalysisResult:
    """Another process stored the same run meanwhile: show the stored one."""
    with ws.read() as con:
        return load_run(con, result.run_id) or result
