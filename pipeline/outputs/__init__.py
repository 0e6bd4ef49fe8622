"""Outputs: what a user reads. Verdict wording, the HTML report, charts, the weekly digest and its
delivery. They read stored runs and views; they never compute an analysis.

May import `pipeline.analysis` (results and stored runs), `pipeline.store`, `pipeline.timing`
(result types), the shared modules. Never the sources.
"""
