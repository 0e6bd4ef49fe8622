"""media-timing: when news events were timed, with sources and honest statistics.

Data moves one way, and so do imports:

    sources  ->  store  ->  analysis (timing: the pure engine)  ->  outputs

- `sources/`   every way data comes in (feed polls, CSV imports), as adapters over one writer
- `store/`     the DuckDB file, migrations, views, the item and event writer, the workspace
- `timing/`    the statistics engine: arrays in, results out; no database, no files
- `analysis/`  claims, loading streams, running them, the ledger of stored runs
- `outputs/`   verdict wording, report, charts, the weekly digest and its delivery

Shared by all: `config` (settings), `errors` (what a user can act on), `timestamps`, `urls`. The
service layer on top: `jobs` (what the DAGs schedule),
`cli`, `demo`, `sql_prompt`. Nothing here imports Airflow (tests/test_layout.py holds all this).
"""
