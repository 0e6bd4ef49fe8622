"""The statistics engine, pure: arrays and rules in, result objects out.

No database, no files, no clock: counting announcements around releases, the null models,
coincidence and correlogram tests, gaps, time uncertainty, displacement and pressure, story
onsets (Kleinberg bursts, k-th outlet, order with bounds), simulation for calibration. Imports numpy and scipy only, never other parts of
`pipeline` (which is what lets `bench/` and the calibration tests drive it directly).
"""
