"""The offline demo: build the database from the bundled 2016 case study and judge 7 Oct 2016."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipeline.analysis.claims import claim_names, load_claim
from pipeline.analysis.runs import analyze
from pipeline.config import CASE_2016_DIR, Settings
from pipeline.outputs.report import write_report
from pipeline.outputs.verdict import render_text
from pipeline.sources import case_2016
from pipeline.sources.import_items import import_items
from pipeline.sources.importers import import_events
from pipeline.store.workspace import Workspace

CLAIM = "oct7_2016"
DIGEST_WEEK = "2016-W40"  # Mon 3 - Sun 9 Oct 2016


def load_case_study(con, say: Callable[[str], None] = print) -> None:
    """Import the timeline and the three streams (idempotent: a rerun adds nothing)."""
    say("  " + import_events(con, CASE_2016_DIR / case_2016.TIMELINE).summary())
    for s in case_2016.STREAMS:
        report = import_items(
            con, CASE_2016_DIR / s.file, source=s.source, role=s.role,
            time_column=s.time_column, text_column=s.text_column, id_column=s.id_column,
            author_column=s.author_column, attribution=s.attribution, label=s.label, caveat=s.caveat,
        )
        say("  " + report.summary())


def run_demo(settings: Settings, *, surrogates: int | None = None,
             say: Callable[[str], None] = print) -> int:
    missing = case_2016.files_present()
    if missing:
        say(f"error: case-study files missing from {CASE_2016_DIR}: {', '.join(missing)}")
        return 2
    started = time.monotonic()
    ws = Workspace(settings)
    say(f"Building {settings.db_path} from the bundled 2016 case study ({CASE_2016_DIR}):")
    with ws.write() as con:
        load_case_study(con, say)
    done = analyze(ws, load_claim(CLAIM), surrogates=surrogates)
    say("")
    say(render_text(done.result))
    say("")
    html = write_report(done.result, ws.reports_dir)
    say(f"Run {done.result.run_id} {'stored' if done.fresh else 'already stored (same data, same parameters)'} "
        f"in {settings.db_path}.")
    say(f"Report: {html}")
    # The other claims too, so every week's digest and the claims' pages have stored figures.
    others = [analyze(ws, load_claim(name), surrogates=surrogates) for name in claim_names() if name != CLAIM]
    say("Other claims: " + ", ".join(f"{a.result.claim.id} run {a.result.run_id} "
                                     f"({'stored' if a.fresh else 'already stored'})" for a in others))
    say(f"Digest of {DIGEST_WEEK}: {_digest_preview(ws)}")
    say(f"Done in {time.monotonic() - started:.1f} s. Query the data:")
    say('  .venv/bin/media-timing sql "SELECT * FROM release_neighbours(window_minutes := 120)"')
    return 0


def _digest_preview(ws: Workspace):
    """The digest of the week of 7 Oct 2016, as it would have been emailed."""
    from pipeline.outputs.digest import compose
    from pipeline.outputs.week_facts import parse_week

    with ws.read() as con:
        digest = compose(con, parse_week(DIGEST_WEEK))
    return digest.preview(ws.reports_dir / f"digest_{DIGEST_WEEK}.html")
