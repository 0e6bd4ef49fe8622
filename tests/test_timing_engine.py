"""The timing engine against brute force, for calibration and power, and for invariances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pipeline.timing import counting, simulate
from pipeline.timing.coincidence import benjamini_hochberg, coincidence_test, correlogram_test
from pipeline.timing.counting import Announcements, PositionCounter, Reach
from pipeline.timing.gaps import lead_lag, nearest_gaps
from pipeline.timing.nulls import WEEK, CircularShift, Coverage, Jitter, WeekdayHourShuffle
from pipeline.timing.screen import PoissonScreen as Poisson

START_WEEK = 2440  # a Monday in October 2016, in weeks since 1970-01-05
STEP = 60.0


def brute_counts(ann, positions, w):
    """O(n*m): announcements within ±w of every position."""
    return (np.abs(np.asarray(ann)[None, None, :] - positions[..., None]) <= w).sum(-1)


def small_world(seed, n_ann=300, n_rel=6, weeks=6):
    rng = np.random.default_rng(seed)
    ann = simulate.announcements(rng, START_WEEK, weeks, n_ann / weeks)
    rel = simulate.releases(rng, START_WEEK, weeks, n_rel)
    return ann, rel, Coverage(*simulate.coverage_of(START_WEEK, weeks))


NULLS = [WeekdayHourShuffle(), Jitter(3 * 3600), CircularShift(), CircularShift("day")]


@pytest.mark.parametrize("null", NULLS, ids=lambda n: f"{n.name}-{getattr(n, 'shift_unit', '')}")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_and_pvalues_match_brute_force(null, seed):
    ann, rel, cov = small_world(seed)
    w = 5400.0
    s = 199
    res = coincidence_test(rel, ann, window_s=w, null=null, coverage=cov, n_surrogates=s, seed=seed)
    # Re-draw the very same surrogates and count them the slow way.
    draws = null.draw(rel, cov, w, STEP, np.random.default_rng(seed), s)
    times = Announcements.of(ann)
    if null.circular:
        period = null.period_steps(cov, STEP) * STEP
        times = Announcements.of(ann[(ann >= cov.start) & (ann < cov.start + period)],
                                 period=period, start=cov.start)
    unrolled = np.concatenate(times.unrolled(w + STEP))
    observed = brute_counts(unrolled, rel[None, :], w)[0]
    null_counts = brute_counts(unrolled, rel[None, :] + draws.steps * STEP, w)
    null_counts[:, ~draws.testable] = 0
    assert np.array_equal(res.counts, observed)
    expected_p = (1 + (null_counts >= observed).sum(0)) / (s + 1)
    np.testing.assert_allclose(res.pvalues[res.testable], expected_p[res.testable])
    assert res.statistic == observed[res.testable].sum()
    np.testing.assert_array_equal(res.null_distribution, null_counts.sum(1))


@pytest.mark.parametrize("max_cells", [counting.MAX_TABLE_CELLS, 10])  # tables, then search
def test_table_and_search_paths_count_identically(max_cells, monkeypatch):
    monkeypatch.setattr(counting, "MAX_TABLE_CELLS", max_cells)
    rng = np.random.default_rng(7)
    ann = Announcements.of(rng.uniform(0, 1e6, 4000))
    # Weekly segments (like the shuffle) and one plain interval (like jitter), odd phases too.
    reaches = [Reach(10080, -3, 2, -20, 39), Reach.interval(-300, 300)]
    for bases in (np.round(rng.uniform(2e5, 8e5, 30)), rng.uniform(2e5, 8e5, 30)):
        reach = [reaches[i % 2] for i in range(len(bases))]
        k = rng.integers(-3, 3, (50, len(bases)))
        j = rng.integers(-20, 40, (50, len(bases)))
        steps = np.where(np.arange(len(bases)) % 2 == 0, k * 10080 + j, rng.integers(-300, 301, (50, len(bases))))
        pc = PositionCounter(ann, bases, STEP, 120, reach)
        pos = bases + steps * STEP
        assert np.array_equal(pc.window(steps, 120), brute_counts(ann.times, pos, 7200))
        d = ann.times[None, None, :] - pos[..., None]
        assert np.array_equal(pc.between(steps, -7, 3), ((d >= -420) & (d < 180)).sum(-1))


def test_announcements_exactly_on_window_edges_are_inside():
    """|a - r| <= W is closed: ties on both edges count, however many share the instant."""
    base = 1_475_870_400.0
    ann = np.array([base - 3600] * 3 + [base + 3600] * 2 + [base + 3601, base - 3601])
    reach = [Reach(10080, -1, 1, -30, 29)]
    pc = PositionCounter(Announcements.of(ann), np.array([base]), STEP, 60, reach)
    steps = np.array([[0], [1], [-1], [10080]])
    assert pc.window(steps, 60)[:, 0].tolist() == [5, 3, 4, 0]
    assert np.array_equal(pc.window(steps, 60), brute_counts(ann, base + steps * STEP, 3600))


def test_correlogram_matches_a_histogram_of_lags():
    ann, rel, cov = small_world(11, n_ann=500)
    res = correlogram_test(rel, ann, bin_s=1200, max_lag_s=7200, null=WeekdayHourShuffle(),
                           coverage=cov, n_surrogates=99, seed=3)
    lags = (ann[None, :] - rel[:, None]).ravel()
    expected, _ = np.histogram(lags, bins=np.arange(-7200, 7201, 1200))
    # np.histogram closes the last bin; ours are all half-open [lo, hi)
    expected[-1] -= (lags == 7200).sum()
    assert np.array_equal(res.counts, expected)
    assert (res.global_lo <= res.pointwise_lo + 1e-9).all() and (res.global_hi >= res.pointwise_hi - 1e-9).all()
    assert 0 < res.pvalue <= 1


def test_gaps_and_lead_lag_match_brute_force():
    ann, rel, _ = small_world(5)
    before, after = nearest_gaps(rel, ann)
    for r, b, a in zip(rel, before, after):
        d = ann - r
        assert b == -d[d <= 0].max()
        assert a == d[d >= 0].min()
    ll = lead_lag(rel, ann, 7200)
    for i, r in enumerate(rel):
        d = ann - r
        near = d[np.abs(d) <= 7200]
        assert ll.before[i] == (near < 0).sum() and ll.after[i] == (near > 0).sum()
        if near.size:
            assert ll.mean_lag_s[i] == pytest.approx(near.mean())


def test_poisson_screen_is_the_closed_form():
    ann, rel, cov = small_world(4)
    res = coincidence_test(rel, ann, window_s=3600, null=Poisson(), coverage=cov)
    rate = ((ann >= cov.start) & (ann < cov.end)).sum() / cov.length
    k = brute_counts(ann, rel[None, :], 3600)[0]
    np.testing.assert_allclose(res.pvalues, stats.poisson.sf(k - 1, rate * 7200))


def test_benjamini_hochberg_skips_untestable():
    q = benjamini_hochberg([0.01, np.nan, 0.04, 0.03])
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], [0.03, 0.04, 0.04])


# --- calibration and power -------------------------------------------------------------------

def _null_pvalues(null, reps, seed, per_week=120, weeks=8, n_rel=1, surrogates=199):
    """Randomised per-release and pooled p-values on simulated null worlds."""
    rng = np.random.default_rng(seed)
    cov = Coverage(*simulate.coverage_of(START_WEEK, weeks))
    per, pooled = [], []
    for r in range(reps):
        ann = simulate.announcements(rng, START_WEEK, weeks, per_week)
        rel = simulate.releases(rng, START_WEEK, weeks, n_rel)
        res = coincidence_test(rel, ann, window_s=3600, null=null, coverage=cov,
                               n_surrogates=surrogates, seed=r)
        per.extend(res.randomized_pvalues(rng)[res.testable])
        if res.null_distribution.size:
            g = (res.null_distribution > res.statistic).sum()
            e = (res.null_distribution == res.statistic).sum()
            pooled.append((g + rng.random() * (e + 1)) / (surrogates + 1))
        else:
            pooled.append(res.pvalue)
    return np.array(per), np.array(pooled)


def test_weekday_hour_null_is_calibrated():
    """Announcements and releases both prefer weekday afternoons but are independent: the
    p-values must be uniform (KS) and reject at no more than the nominal rate."""
    per, pooled = _null_pvalues(WeekdayHourShuffle(), reps=300, seed=20, n_rel=3)
    assert stats.kstest(per, "uniform").pvalue > 0.01
    assert stats.kstest(pooled, "uniform").pvalue > 0.01
    assert (per <= 0.05).mean() < 0.05 + 3 * np.sqrt(0.05 * 0.95 / per.size)


def test_calibration_check_catches_a_null_that_ignores_the_daily_rhythm():
    """The same check must fail a wrong null: rotating by any offset moves afternoon releases
    into the night, so under shared rhythms its p-values are not uniform."""
    per, _ = _null_pvalues(CircularShift(), reps=300, seed=20, n_rel=3)
    assert stats.kstest(per, "uniform").pvalue < 1e-3


def test_poisson_screen_is_anti_conservative_on_rhythmic_news():
    """Why Poisson is only a screen: with business-hour rhythms on both sides it rejects far
    more often than 5% under a true null."""
    rng = np.random.default_rng(3)
    weeks = 8
    cov = Coverage(*simulate.coverage_of(START_WEEK, weeks))
    rejections = []
    for _ in range(200):
        ann = simulate.announcements(rng, START_WEEK, weeks, 120)
        rel = simulate.releases(rng, START_WEEK, weeks, 3, profile=simulate.news_profile(night=0.02))
        res = coincidence_test(rel, ann, window_s=3600, null=Poisson(), coverage=cov)
        rejections.extend(res.pvalues <= 0.05)
    assert np.mean(rejections) > 0.08


def test_planted_coincidences_are_found():
    """Five releases, each with three extra announcements planted within 30 minutes: the pooled
    test at the 5% level finds it in at least 80% of worlds."""
    rng = np.random.default_rng(9)
    weeks = 8
    cov = Coverage(*simulate.coverage_of(START_WEEK, weeks))
    found = []
    for r in range(40):
        ann = simulate.announcements(rng, START_WEEK, weeks, 120)
        rel = simulate.releases(rng, START_WEEK, weeks, 5)
        planted = (rel[:, None] + rng.uniform(-1800, 1800, (5, 3))).ravel()
        res = coincidence_test(rel, np.concatenate([ann, planted]), window_s=3600,
                               null=WeekdayHourShuffle(), coverage=cov, n_surrogates=199, seed=r)
        found.append(res.pvalue <= 0.05)
    assert np.mean(found) >= 0.8


# --- invariances -----------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift_weeks=st.integers(-200, 200))
def test_shifting_everything_by_whole_weeks_changes_nothing(seed, shift_weeks):
    ann, rel, cov = small_world(seed, n_ann=150, n_rel=4)
    d = shift_weeks * WEEK
    a = coincidence_test(rel, ann, window_s=3600, null=WeekdayHourShuffle(), coverage=cov,
                         n_surrogates=99, seed=1)
    b = coincidence_test(rel + d, ann + d, window_s=3600, null=WeekdayHourShuffle(),
                         coverage=Coverage(cov.start + d, cov.end + d), n_surrogates=99, seed=1)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.pvalues, b.pvalues)
    assert a.pvalue == b.pvalue


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), extra=st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_far_away_announcements_change_nothing_within_the_window(seed, extra):
    ann, rel, cov = small_world(seed, n_ann=150, n_rel=4)
    w = 3600.0
    candidates = cov.start + np.array(extra) * cov.length
    far = candidates[np.abs(candidates[:, None] - rel[None, :]).min(axis=1) > w]
    a = coincidence_test(rel, ann, window_s=w, null=WeekdayHourShuffle(), coverage=cov,
                         n_surrogates=99, seed=1)
    b = coincidence_test(rel, np.concatenate([ann, far]), window_s=w, null=WeekdayHourShuffle(),
                         coverage=cov, n_surrogates=99, seed=1)
    np.testing.assert_array_equal(a.counts, b.counts)
    la, lb = lead_lag(rel, ann, w), lead_lag(rel, np.concatenate([ann, far]), w)
    np.testing.assert_array_equal(la.before, lb.before)
    np.testing.assert_array_equal(la.after, lb.after)


def test_a_release_outside_the_coverage_is_untestable_not_guessed():
    ann, rel, cov = small_world(2)
    outside = np.append(rel, cov.end + 10 * WEEK)
    res = coincidence_test(outside, ann, window_s=3600, null=WeekdayHourShuffle(), coverage=cov,
                           n_surrogates=99, seed=0)
    assert not res.testable[-1] and np.isnan(res.pvalues[-1])
    assert "coverage" in res.reasons[-1]


def test_results_are_reproducible_from_the_seed():
    ann, rel, cov = small_world(8)
    run = lambda s: coincidence_test(rel, ann, window_s=3600, null=WeekdayHourShuffle(),  # noqa: E731
                                     coverage=cov, n_surrogates=999, seed=s)
    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a.null_distribution, b.null_distribution)
    assert not np.array_equal(a.null_distribution, c.null_distribution)
