"""The offline demo: build the database from the bundled 2016 case study and judge 7 Oct 2016."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import case_2016
from .analysis import run_claim, store_result
from .claims import load_claim
from .config import CASE_2016_DIR, Settings
from .database import open_db
from .importers import import_events, import_items
from .report import write_report
from .verdict import render_text

CLAIM = "oct7_2016"
DIGEST_WEEK = "2016-W40"  # Mon 3 - Sun 9 Oct 2016


def load_case_study(con, say: Callable[[str], None] = print) -> None:
    """Import the timeline and the three streams (idempotent: a rerun adds nothing)."""
    say("  " + import_events(con, CASE_2016_DIR / case_2016.TIMELINE).summary())
    for s in case_2016.STREAMS:
        report = import_items(
            con, CASE_2016_DIR / s.file, source=s.source, role=s.role,
            time_column=s.time_column, text_column=s.text_column, id_column=s.id_column,
            author_column=s.author_column, attribution=s.attribution,
        )
        say("  " + report.summary())


def run_demo(settings: Settings, *, surrogates: int | None = None,
             say: Callable[[str], None] = print) -> int:
    missing = case_2016.files_present()
    if missing:
        say(f"error: case-study files missing from {CASE_2016_DIR}: {', '.join(missing)}")
        return 2
    started = time.monotonic()
    say(f"Building {settings.db_path} from the bundled 2016 case study ({CASE_2016_DIR}):")
    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        load_case_study(con, say)
        result = run_claim(con, load_claim(CLAIM), surrogates=surrogates)
        fresh = store_result(con, result)
    say("")
    say(render_text(result))
    say("")
    reports = settings.data_dir / "reports"
    html = write_report(result, reports)
    say(f"Run {result.run_id} {'stored' if fresh else 'already stored (same data, same parameters)'} "
        f"in {settings.db_path}.")
    say(f"Report: {html}")
    for extra in _extras(settings, say):
        say(extra)
    say(f"Done in {time.monotonic() - started:.1f} s. Query the data:")
    say('  .venv/bin/media-timing sql "SELECT * FROM release_neighbours(window_minutes := 120)"')
    return 0


def _extras(settings: Settings, say) -> list[str]:
    """The digest of the week of 7 Oct 2016, as it would have been emailed."""
    from .digest import compose, parse_week

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        digest = compose(con, parse_week(DIGEST_WEEK))
    path = digest.preview(settings.data_dir / "reports" / f"digest_{DIGEST_WEEK}.html")
    return [f"Digest of {DIGEST_WEEK}: {path}"]
