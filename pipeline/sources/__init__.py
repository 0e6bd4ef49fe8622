"""Sources: every way data comes in, as adapters.

A source reads the outside world (feeds over HTTP, CSV files, the bundled case study) and hands
items to the one writer in `pipeline.store.items`. May import: `pipeline.store`, and the shared
`pipeline.config`, `errors`, `timestamps`, `urls`. Never the analysis or the outputs.
"""
