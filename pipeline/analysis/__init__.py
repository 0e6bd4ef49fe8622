"""Analysis runs: claims, loading their streams from the store, running the pure engine
(`pipeline.timing`) and storing what a run concluded, once, keyed by run id.

May import `pipeline.store`, `pipeline.timing`, the shared modules, and `pipeline.sources.csvfile`
(the CSV reader of `analyze --releases FILE`). Never the outputs.
"""
