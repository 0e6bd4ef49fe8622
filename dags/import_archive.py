"""
### Import a historical stream (manual)

Load an archive of timestamped posts (tweets, a headline archive; CSV, gzip accepted) as items
of an archive source, so backfills are runs you can see, retry and audit. Trigger it with the
form: the file path (on the worker), the source name and role, and which columns hold the time,
the text and optionally the link, a stable id and the author.

**Writes**: `sources`, `items`, `imports`. Idempotent: importing the same file again adds
nothing. Rows with an unparseable time or no zone are rejected and listed in the log by
file and line; the good rows load. **Emits** `duckdb://media_timing/items`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from media_timing_common import DEFAULT_ARGS, NEW_ITEMS, START, WRITER_POOL, WRITER_RETRY

from pipeline.config import ROLES  # cheap: no DuckDB, no pandas at parse time


@dag(
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={**DEFAULT_ARGS, "retries": 1},
    tags=["media-timing", "backfill"],
    doc_md=__doc__,
    params={
        "file": Param("", type="string", minLength=1, title="CSV file", description="Path on the worker; .gz accepted"),
        "source": Param("", type="string", minLength=1, title="Source name"),
        "role": Param("news", type=["null", "string"], enum=[None, *ROLES], title="Role",
                      description="news, release or announcement. Empty: news"),
        "time_column": Param("", type="string", minLength=1, title="Time column"),
        "text_column": Param("", type="string", minLength=1, title="Text column"),
        # Optional fields accept empty (null): the form can be sent with only the fields above.
        "url_column": Param(None, type=["null", "string"], title="Link column (optional)",
                            description="Empty: the items have no link; dedup uses the id or a hash of time and text"),
        "id_column": Param(None, type=["null", "string"], title="Id column (optional)",
                           description="Empty: items are keyed by link, else by time, text and author"),
        "author_column": Param(None, type=["null", "string"], title="Author column (optional)",
                               description="Empty: no author is stored"),
        "timezone": Param(None, type=["null", "string"], title="Zone for times without one (optional)",
                          description="IANA name, e.g. America/New_York. Empty: a time that states no zone "
                                      "is rejected (never read as UTC)"),
    },
)
def import_archive():
    @task(pool=WRITER_POOL, retry_policy=WRITER_RETRY, outlets=[NEW_ITEMS])
    def load(params=None) -> dict:
        from pipeline import jobs

        result = jobs.import_archive(**params)
        for line in result["first_rejections"]:
            print(f"rejected: {line}")
        print(f"{result['file']}: {result['rows']} rows, {result['new']} new, "
              f"{result['duplicates']} repeated, {result['rejected']} rejected")
        return result

    load()


import_archive()
