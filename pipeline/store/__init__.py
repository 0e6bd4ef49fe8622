"""The store: the DuckDB file, its migrations and views, and the one writer of items and events.

Everything that lands in the database goes through here, so dedup keys, time flags and the load
ledger have one definition. May import only the shared `pipeline.config`, `errors`,
`timestamps`, `urls`. The `Workspace` (workspace.py) is how every caller opens it.
"""
