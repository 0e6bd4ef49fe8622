"""Story onsets in words: the onsets table, and which story broke first in each stream.

Read by the terminal verdict, the HTML report and the digest, so an order reads the same
wherever it is met. Orders in a lagged stream are said with that caveat: its gaps are not the
true gaps.
"""

from __future__ import annotations

from datetime import datetime

from pipeline.analysis.onsets import ALL
from pipeline.outputs.tables import text_table

ONSET_HEADER = ["stream", "story", "first item (UTC)", "2nd outlet", "3rd outlet", "burst",
                "items/outlets", "lag", "first title"]


def _hm(iso: str | None, day: bool = False) -> str:
    if not iso:
        return "-"
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return t.strftime("%m-%d %H:%M" if day else "%H:%M")


CAVEAT = ("Onsets say when a stream carried a story, not when it happened, and they are only as good "
          "as the story rules that find them (a rule can miss or misfire: `media-timing stories check` "
          "shows what each one catches).")


def streams_with_onsets(onsets: dict) -> list[str]:
    """Streams in which some story broke; 'all streams' only where it adds to a single stream."""
    found = [s["source"] for s in onsets["streams"]
             if any(r["onset_lo_utc"] for r in onsets["records"] if r["source"] == s["source"])]
    return found if len([f for f in found if f != ALL]) > 1 else [f for f in found if f != ALL]


def onset_rows(onsets: dict) -> list[list[str]]:
    rows = []
    shown = set(streams_with_onsets(onsets))
    for r in onsets["records"]:
        if r["source"] not in shown:
            continue
        lag = "-" if r["lag_minutes"] is None else f"{r['lag_minutes']:+.0f} min"
        title = (r["first_title"] or "(no match)")
        rows.append([r["source"], r["story"], _hm(r["onset_lo_utc"], day=True), _hm(r["outlet2_utc"]),
                     _hm(r["outlet3_utc"]), _hm(r["burst_start_utc"]), f"{r['n_items']}/{r['n_outlets']}",
                     lag, title[:60] + ("…" if len(title) > 60 else "")])
    return rows


def _pair(orders: list[dict], source: str, a: str, b: str) -> dict | None:
    for o in orders:
        if o["source"] == source and {o["story_a"], o["story_b"]} == {a, b}:
            return o
    return None


def stream_order(onsets: dict, source: str) -> str:
    """'a, then b (+34 min, 33 to 35), then c ...' for one stream, or why it cannot be told."""
    found = sorted((r for r in onsets["records"] if r["source"] == source and r["onset_lo_utc"]),
                   key=lambda r: r["onset_lo_utc"])
    missing = [r["story"] for r in onsets["records"] if r["source"] == source and not r["onset_lo_utc"]]
    if not found:
        return "no story of the claim matches anything here"
    parts = [found[0]["story"]]
    for prev, cur in zip(found, found[1:]):
        o = _pair(onsets["orders"], source, prev["story"], cur["story"]) or {}
        if o.get("undetermined"):
            parts.append(f"{cur['story']} (order with {prev['story']} undetermined: {o['undetermined']})")
        else:
            sign = 1 if o.get("story_a") == prev["story"] else -1
            lo, hi = sorted((sign * (o.get("gap_lo_minutes") or 0), sign * (o.get("gap_hi_minutes") or 0)))
            parts.append(f"then {cur['story']} ({sign * (o.get('gap_minutes') or 0):+.0f} min, {lo:+.0f} to {hi:+.0f})")
    text = ", ".join(parts)
    if missing:
        text += f"; no onset for {', '.join(missing)}"
    return text


def _lag_note(summary: dict) -> str:
    if summary["lagged"]:
        return (f" [lagged: its onsets come up to {summary['max_lag_minutes']:.0f} min after the sourced "
                "events, so its gaps are not the true gaps; only the order is read]")
    return ""


def onset_lines(onsets: dict) -> list[str]:
    """The terminal's onsets section: the table, then the order per stream."""
    out = [f"Story onsets (rules {onsets['rules_file']} {onsets['rules_sha256'][:8]}; first item, 2nd and 3rd "
           f"outlet, Kleinberg burst on {onsets['bin_minutes']:g}-min bins; lag = first item minus the "
           "end of its sourced event)"]
    shown = streams_with_onsets(onsets)
    if shown:
        out += text_table(onset_rows(onsets), ONSET_HEADER)
    silent = [s["source"] for s in onsets["streams"] if s["source"] not in shown and s["source"] != ALL]
    if silent:
        out.append(f"  No story of the claim matches in {', '.join(silent)}"
                   + (" (inside the stories' windows)." if any(r["anchor_event"] for r in onsets["records"]) else "."))
    if shown:
        out.append("  Order per stream:")
    for s in onsets["streams"]:
        if s["source"] in shown:
            out.append(f"  - {s['source']}: {stream_order(onsets, s['source'])}{_lag_note(s)}")
            out += [f"      {story}: {note}" for story, note in s["notes"].items()]
    if onsets.get("overlaps"):
        out.append("  Items matching two stories: " + ", ".join(f"{k} ({n})" for k, n in onsets["overlaps"].items())
                   + " (media-timing stories check shows them)")
    return out


def order_summary(onsets: dict) -> list[str]:
    """One verdict line per stream in which any story broke."""
    lines = []
    shown = streams_with_onsets(onsets)
    for s in onsets["streams"]:
        if s["source"] not in shown:
            continue
        lines.append(f"Story onsets in {s['source']}: {stream_order(onsets, s['source'])}."
                     + (" This stream lags the sourced events (by up to "
                        f"{s['max_lag_minutes']:.0f} min), so its gaps are not the true gaps; "
                        "the order is all it shows." if s["lagged"] else ""))
    return lines


def _items(rows: list[dict], indent: str = "      ") -> list[str]:
    return [f"{indent}{_hm(r['utc'], day=True)}  {r['source']}/{r['outlet']}: {r['title'][:90]}" for r in rows]


def audit_lines(audit) -> list[str]:
    """``media-timing stories check``: what each rule catches, nearly catches, and shares."""
    out = [f"Story rules {audit.rules.path} ({audit.rules.sha256[:8]}) over {audit.n_items:,} items of "
           f"{', '.join(audit.sources)}"]
    for s in audit.stories:
        where = (f", {s['n_in_window']} inside its window {_hm(s['window'][0], True)} .. "
                 f"{_hm(s['window'][1], True)} around {s['anchor']}" if s["window"] else "")
        out += ["", f"{s['story']}: {s['n_matches']} matches{where}"]
        if s["note"]:
            out.append(f"  {s['note']}")
        for label, key in (("first matches", "first"), ("a sample", "sample"),
                           ("matches outside the window (not onsets)", "outside_window"),
                           (f"near misses ({s['near_miss_kind']})", "near_misses")):
            if s[key]:
                out.append(f"  {label}:")
                out += _items(s[key])
    if audit.overlaps:
        out += ["", "Items matching two stories (an onset may be counted twice; tighten one rule):"]
        for o in audit.overlaps:
            out.append(f"  {' & '.join(o['stories'])}: {o['n']}")
            out += _items(o["items"])
    return out


def onset_view(onsets: dict | None) -> dict | None:
    """What the HTML report shows of the onsets: the records of the streams where a story broke,
    the order per stream, and the streams where none did."""
    if not onsets:
        return None
    shown = streams_with_onsets(onsets)
    return {
        "records": [r for r in onsets["records"] if r["source"] in shown],
        "orders": [(s["source"], stream_order(onsets, s["source"]) + _lag_note(s), s["notes"])
                   for s in onsets["streams"] if s["source"] in shown],
        "silent": [s["source"] for s in onsets["streams"] if s["source"] not in shown and s["source"] != ALL],
        "rules": f"{onsets['rules_file']} ({onsets['rules_sha256'][:8]})", "bin_minutes": onsets["bin_minutes"],
    }
