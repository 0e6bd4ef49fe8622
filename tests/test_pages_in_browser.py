"""The report and the digest as a reader sees them, in a real headless Chromium: every image
loads, nothing is wider than a 1,280 px window, and the digest fits a 600 px mail client. A
screenshot of each is kept in the test's temporary folder."""

import pytest

from pipeline.analysis.runs import latest_runs, load_run
from pipeline.outputs.digest import compose
from pipeline.outputs.report import write_report
from pipeline.outputs.week_facts import parse_week
from tests.browser import chromium, layout, set_viewport


@pytest.fixture(scope="module")
def pages(case_runs_template, tmp_path_factory):
    """The reports of every claim and the digests of three kinds of week, as files."""
    import shutil

    from pipeline.config import load_settings
    from pipeline.store.workspace import Workspace

    out = tmp_path_factory.mktemp("pages")
    db = out / "runs.duckdb"
    shutil.copy(case_runs_template, db)
    ws = Workspace(load_settings().__class__(db_path=db, data_dir=out))
    found = {}
    with ws.read() as con:
        for claim, run_id, _ in latest_runs(con):
            found[f"report {claim}"] = (write_report(load_run(con, run_id), out / claim), (1280,))
        for week in ("2016-W40", "2016-W41", "2016-W20"):  # one release, a series, none
            found[f"digest {week}"] = (compose(con, parse_week(week)).preview(out / f"digest_{week}.html"),
                                       (1280, 600))
    return out, found


def test_pages_fit_their_windows_and_show_every_image(pages):
    out, found = pages
    problems = []
    with chromium(out / "chromium-profile") as driver:
        for name, (path, widths) in found.items():
            for width in widths:
                set_viewport(driver, width)
                driver.get(path.as_uri())
                seen = layout(driver)
                assert seen["width"] == width, (name, seen["width"])
                shot = out / f"{path.stem}_{width}px.png"
                driver.save_screenshot(str(shot))
                assert shot.stat().st_size > 10_000, name
                if seen["scroll_width"] > width:
                    problems.append(f"{name} at {width}px: page is {seen['scroll_width']}px wide")
                problems += [f"{name} at {width}px: {o} overflows" for o in seen["overflowing"]]
                problems += [f"{name}: image {src} did not load" for src in seen["broken"]]
                if name.startswith("report"):
                    assert seen["images"] >= 1 and "What this cannot show" in seen["text"], name
                if name == "digest 2016-W40":
                    assert seen["images"] == 2 and "Reproduce a figure" in seen["text"]
    assert not problems, "\n".join(problems)
