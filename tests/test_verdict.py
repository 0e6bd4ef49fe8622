"""The words of a verdict, wherever it is read: whole counts, windows and spans written as a
reader expects, no evidence reading beside a curated stream, displacement said plainly or not
at all, and charts whose bands cannot go below zero."""

import dataclasses

import numpy as np
import pytest

from pipeline.analysis.runs import latest_runs, load_run
from pipeline.outputs.charts import correlogram_figure
from pipeline.outputs.verdict import (
    caveats,
    displacement_reading,
    fmt_count,
    fmt_span,
    fmt_window,
    reading,
    release_sentence,
    render_text,
    stream_rows,
)
from pipeline.timing.coincidence import correlogram_test
from pipeline.timing.nulls import Coverage, Null
from pipeline.timing.registry import MODELS, NULLS, SCREENS, make_null


@pytest.fixture
def oct7(case_runs):
    with case_runs.read() as con:
        runs = {c: r for c, r, _ in latest_runs(con)}
        return load_run(con, runs["oct7_2016"])


def test_numbers_are_written_as_a_reader_expects():
    assert (fmt_count(3.0), fmt_count(78.5), fmt_count(0)) == ("3", "78.5", "0")
    assert fmt_window(120.0) == "±120 min"
    # Coverage ends are exclusive: a stream ending at midnight ended the day before.
    assert fmt_span(1465862400.0, 1487376000.0) == "2016-06-14..2017-02-17"


def test_the_verdict_table_has_whole_counts_and_full_years(oct7):
    text = render_text(oct7)
    assert "2016-09-01..2016-11-09" in text and "2016-06-14..2017-02-17" in text
    assert ".0 " not in text.split("Verdict:")[0].replace("8.1", "").replace("79.9", "")
    for row in stream_rows(oct7, "E015"):
        assert "." not in row[2] or row[2].endswith(".5"), row


def test_a_curated_stream_has_no_evidence_reading(oct7):
    curated = next(s for s in oct7.streams if s.stream.spec.curated)
    t = curated.releases[0]
    assert t.pvalue <= 0.05  # small, and still not evidence
    for words in (reading(curated, t), reading(curated, t, short=True),
                  release_sentence(curated, t, 120)):
        assert "not evidence" in words and "evidence of clustering" not in words
    row = next(r for r in stream_rows(oct7, "E015") if "[curated]" in r[0])
    assert row[-1] == "curated: not evidence"
    line = next(x for x in render_text(oct7).splitlines() if x.strip().startswith("sourced timeline"))
    assert "some evidence" not in line


def test_displacement_is_said_plainly_with_its_p_value(oct7):
    text = displacement_reading(oct7)
    assert "rank p = " in text and "smallest possible" in text and "wikileaks_podesta" in text
    assert "does not show" in text or "no sign of crowding out" in text


@pytest.mark.parametrize("change, why", [
    (dict(other_ids=["E016", "E017"], other_shares=np.array([0.1, 0.2]), other_counts=[(1, 10), (2, 10)]),
     "other releases fall inside"),
    (dict(focal_counts=(0, 12)), "only 12 headlines"),
    (dict(focal_counts=(0, 108), other_counts=[(0, 100)] * 6), "too few to compare"),
])
def test_displacement_is_silent_where_the_stream_cannot_support_it(oct7, change, why):
    thin = dataclasses.replace(oct7, displacement=dataclasses.replace(oct7.displacement, **change))
    text = displacement_reading(thin)
    assert "not enough data" in text and why in text and "rank p" not in text


def test_correlogram_bands_never_go_below_zero_and_the_chart_names_its_bins():
    rng = np.random.default_rng(3)
    start = 1_475_000_000.0 - 1_475_000_000.0 % 604800
    ann = np.sort(start + rng.uniform(0, 8 * 604800, 40))  # sparse: the null mean is near zero
    rel = np.array([start + 3 * 604800 + 7200.0])
    corr = correlogram_test(rel, ann, bin_s=1200, max_lag_s=7200, null=make_null("shuffle-weekday-hour"),
                            coverage=Coverage(start, start + 8 * 604800), n_surrogates=199, seed=1)
    assert (corr.global_lo >= 0).all() and (corr.pointwise_lo >= 0).all()
    assert (corr.global_lo <= corr.null_mean + 1e-9).all()
    fig = correlogram_figure(corr, "sparse")
    ax = fig.axes[0]
    assert "bins of 20 min" in ax.get_xlabel() and ax.get_ylim()[0] == 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_verdict_carries_the_caveat_its_null_declares(oct7, name):
    """The caveats come from the model registry: a verdict made under a null says what that null
    cannot show, and never another null's words."""
    result = dataclasses.replace(oct7, claim=dataclasses.replace(oct7.claim, null=name))
    said = " ".join(caveats(result))
    assert MODELS[name].caveat and MODELS[name].caveat in said
    for other in set(MODELS) - {name}:
        assert MODELS[other].caveat not in said
    weeks_note = "compares a release with the same hour of the week" in said
    assert weeks_note == (name == "shuffle-weekday-hour")


def test_the_poisson_screen_is_not_a_monte_carlo_null():
    screen = make_null("poisson")
    assert not isinstance(screen, Null) and not hasattr(screen, "draw")
    assert set(NULLS) | set(SCREENS) == set(MODELS) and not set(NULLS) & set(SCREENS)
    cov = Coverage(0.0, 7 * 86400.0)
    with pytest.raises(ValueError, match="needs a Monte Carlo null"):
        correlogram_test(np.array([3600.0 * 30]), np.arange(0, 7 * 86400, 600.0), bin_s=1200,
                         max_lag_s=7200, null=screen, coverage=cov)
