"""Uncertain times, displacement, news pressure and story rules."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.analysis.stories import StoryRule, StoryRulesError, load_story_rules, match_stories
from pipeline.timing import counting, simulate
from pipeline.timing.coincidence import coincidence_test, counted_stretches
from pipeline.timing.counting import TimeParts
from pipeline.timing.displacement import displacement
from pipeline.timing.nulls import DAY, CircularShift, Coverage, Jitter, Null, WeekdayHourShuffle
from pipeline.timing.pressure import daily_pressure
from pipeline.timing.screen import PoissonScreen
from pipeline.timing.uncertainty import IntervalSampler, over_intervals, overlapping, sample_within

START_WEEK = 2440


def test_a_day_only_time_is_drawn_across_the_day_never_pinned_to_midnight():
    rng = np.random.default_rng(0)
    lo, hi = np.array([1_475_812_800.0]), np.array([1_475_812_800.0 + DAY])  # 7 Oct 2016 04:00Z + 1 day
    draws = sample_within(lo, hi, lo, rng, 2000, 60.0)[:, 0]
    assert (draws >= lo).all() and (draws <= hi).all()
    assert (draws == lo[0]).mean() < 0.01
    assert stats.kstest((draws - lo[0]) / DAY, "uniform").pvalue > 0.01
    assert (np.mod(draws, 60) == 0).all()  # on the minute grid, so draws share count tables


def test_exact_times_are_not_drawn():
    rng = np.random.default_rng(0)
    lo = np.array([100.0, 1000.0])
    hi = np.array([160.0, 5000.0])  # the first is 'to the minute'
    d = sample_within(lo, hi, np.array([130.0, 3000.0]), rng, 50, 60.0)
    assert (d[:, 0] == 130.0).all()
    assert len(np.unique(d[:, 1])) > 10


def test_the_sampler_sets_the_exact_times_apart_and_draws_the_others_as_sample_within_does():
    """over_intervals counts the exact times as one part, sorted once, and draws only the
    uncertain ones: the two parts together must be a draw of sample_within over all of them.
    Random mixes of exact and uncertain times, widths around the step, several steps."""
    rng0 = np.random.default_rng(5)
    for trial in range(300):
        n = int(rng0.integers(0, 300))
        best = rng0.random(n) * 1e6
        width = np.where(rng0.random(n) < rng0.random(), rng0.random(n) * rng0.choice([30, 60, 600, 7200]), 0.0)
        lo = best - width * rng0.random(n)
        hi = lo + width
        step = float(rng0.choice([1.0, 60.0, 300.0]))
        sampler = IntervalSampler(lo, hi, best, step)
        uncertain = hi - lo > step
        assert sampler.varies == bool(uncertain.any())
        assert np.array_equal(sampler.exact, np.sort(best[~uncertain])), trial
        order = np.argsort(best[uncertain], kind="stable")  # the draw comes in order of best times
        mine, theirs = np.random.default_rng(trial), np.random.default_rng(trial)
        for _ in range(3):
            drawn = sampler.draw(mine)
            expected = sample_within(lo[uncertain][order], hi[uncertain][order], best[uncertain][order],
                                     theirs, 1, step)[0]
            assert np.array_equal(drawn, expected), trial
            assert ((drawn >= lo[uncertain][order]) & (drawn <= hi[uncertain][order])).all()


@pytest.mark.parametrize("null", [WeekdayHourShuffle(), Jitter(3 * 3600), CircularShift(), CircularShift("day"),
                                  PoissonScreen()], ids=lambda n: f"{n.name}-{getattr(n, 'shift_unit', '')}")
@pytest.mark.parametrize("max_cells", [counting.MAX_TABLE_CELLS, 10])  # tables, then search
def test_counting_the_exact_and_the_drawn_times_as_parts_equals_counting_their_union(null, max_cells, monkeypatch):
    """Each draw is tested on two sorted parts (the exact times, the drawn ones) whose counts
    add up; the result must be the one the union gives, through every null, with count tables
    and without, and with announcements on the coverage's edges (the circle's seam)."""
    monkeypatch.setattr(counting, "MAX_TABLE_CELLS", max_cells)
    rng = np.random.default_rng(17)
    weeks = 3
    cov = Coverage(*simulate.coverage_of(START_WEEK, weeks))
    best = np.concatenate([simulate.announcements(rng, START_WEEK, weeks, 80),
                           [cov.start, cov.start + 30, cov.end - 60, cov.end - 1]])
    wide = rng.random(best.size) < 0.5
    lo, hi = best - 5400 * wide * rng.random(best.size), best + 5400 * wide * rng.random(best.size)
    # One off the minute grid (its tables have another phase), one a week after another (same
    # grid cells, another release).
    rel = np.array([cov.start + 600, cov.start + 3.5 * DAY, cov.start + 10.2 * DAY, cov.start + 10.2 * DAY + 30.5,
                    cov.start + 17.2 * DAY, cov.end - 900])
    seen = []

    def test(r, a, s):
        assert isinstance(a, TimeParts) and len(a.parts) == 2
        whole = coincidence_test(r, np.concatenate(a.parts), window_s=3600, null=null, coverage=cov,
                                 n_surrogates=99, seed=s)
        parts = coincidence_test(r, a, window_s=3600, null=null, coverage=cov, n_surrogates=99, seed=s)
        for field in ("counts", "pvalues", "null_distribution", "null_counts_mean"):
            np.testing.assert_array_equal(getattr(parts, field), getattr(whole, field), err_msg=field)
        assert parts.pvalue == whole.pvalue or (np.isnan(parts.pvalue) and np.isnan(whole.pvalue))
        seen.append(whole.counts)
        kept.append(len(a.first_tables))
        return parts

    kept: list[int] = []
    over_intervals(test, (rel, rel, rel), (lo, hi, best), draws=8, seed=4, step=60.0)
    assert len(seen) == 8 and len({tuple(c) for c in seen}) > 1  # the draws moved the counts
    # The releases are exact: every draw counts on the first draw's grids, so the exact part's
    # tables are made once (none on the search path, nor for the screen), not once per draw.
    assert len(set(kept)) == 1 and (kept[0] > 0) == (max_cells > 10 and isinstance(null, Null)), kept


def test_announcements_in_any_order_give_the_same_pvalue_range_as_in_time_order():
    """over_intervals puts the announcements in time order before drawing (so each draw comes
    out nearly sorted); given in time order, a shuffled copy must give the same summary."""
    rng = np.random.default_rng(9)
    weeks = 4
    cov = Coverage(*simulate.coverage_of(START_WEEK, weeks))
    best = np.sort(simulate.announcements(rng, START_WEEK, weeks, 60))
    wide = rng.random(best.size) < 0.4
    lo, hi = best - 1800 * wide, best + 1800 * wide
    rel = cov.start + np.array([3.5, 10.2, 17.9]) * DAY

    def test(r, a, s):
        return coincidence_test(r, a, window_s=3600, null=WeekdayHourShuffle(), coverage=cov,
                                n_surrogates=99, seed=s)
    in_order = over_intervals(test, (rel, rel, rel), (lo, hi, best), draws=20, seed=3, step=60.0)
    shuffle = rng.permutation(best.size)
    shuffled = over_intervals(test, (rel, rel, rel), (lo[shuffle], hi[shuffle], best[shuffle]),
                              draws=20, seed=3, step=60.0)
    assert in_order.draws == 20
    assert np.array_equal(in_order.pvalues, shuffled.pvalues)
    assert np.array_equal(in_order.counts, shuffled.counts)


def test_the_pvalue_range_shows_how_much_an_unknown_time_matters():
    """A burst at 15:00 on the release day: if the release was at 15:00 the coincidence is
    strong, if at 03:00 there is none. A day-only release must report that whole range."""
    rng = np.random.default_rng(4)
    weeks = 8
    cov = Coverage(*simulate.coverage_of(START_WEEK, weeks))
    ann = simulate.announcements(rng, START_WEEK, weeks, 100)
    day = cov.start + 3 * 7 * DAY + 2 * DAY  # a Wednesday
    ann = np.sort(np.concatenate([ann, day + 15 * 3600 + rng.uniform(-1200, 1200, 12)]))

    def test(r, a, s):
        return coincidence_test(r, a, window_s=3600, null=WeekdayHourShuffle(), coverage=cov,
                                n_surrogates=199, seed=s)

    summary = over_intervals(test, (np.array([day]), np.array([day + DAY]), np.array([day])),
                             (ann, ann, ann), draws=60, seed=1, step=60.0)
    lo, med, hi = summary.pvalue_range(0)
    assert summary.draws == 60
    # Eight weeks of comparison: even a perfect hit can't go much below 1/8 of the positions
    # in its own week, which is the honest floor the verdict talks about.
    assert lo <= 0.05 and hi >= 0.5
    exact = over_intervals(test, (np.array([day + 15 * 3600]),) * 3, (ann, ann, ann),
                           draws=60, seed=1, step=60.0)
    assert exact.draws == 1


def _news(rng, starts, story_share, hours=6, per_hour=20):
    times, story = [], []
    for start, share in zip(starts, story_share):
        n = rng.poisson(per_hour * hours)
        times.append(start + rng.uniform(0, hours * 3600, n))
        story.append(rng.random(n) < share)
    return np.concatenate(times), np.concatenate(story)


def test_displacement_finds_a_story_crowded_out():
    rng = np.random.default_rng(2)
    starts = [i * 86400.0 for i in range(10)]
    t, s = _news(rng, starts, [0.01] + [0.12] * 9)
    res = displacement(t, s, ("focal", starts[0]), [(f"r{i}", x) for i, x in enumerate(starts[1:])],
                       hours=6, coverage=(0, 10 * 86400), n_boot=500, seed=1)
    assert res.difference == pytest.approx(res.focal_share - res.other_shares.mean())
    assert -0.15 < res.difference < -0.05
    assert res.ci[1] < 0
    assert res.rank_pvalue == pytest.approx(0.1)


def test_displacement_finds_nothing_when_there_is_nothing():
    rng = np.random.default_rng(3)
    starts = [i * 86400.0 for i in range(10)]
    t, s = _news(rng, starts, [0.1] * 10)
    res = displacement(t, s, ("focal", starts[0]), [(f"r{i}", x) for i, x in enumerate(starts[1:])],
                       hours=6, coverage=(0, 10 * 86400), n_boot=500, seed=1)
    assert res.ci[0] < 0 < res.ci[1]


def test_displacement_skips_releases_outside_the_news_coverage():
    t = np.arange(0, 5 * 86400, 600.0)
    s = np.zeros_like(t, dtype=bool)
    res = displacement(t, s, ("focal", 0.0), [("in", 86400.0), ("out", 9 * 86400.0)], hours=6,
                       coverage=(0, 5 * 86400), n_boot=50)
    assert res.other_ids == ["in"] and res.skipped == ["out"]
    with pytest.raises(ValueError, match="not inside the news stream's coverage"):
        displacement(t, s, ("late", 4.9 * 86400), [], hours=6, coverage=(0, 5 * 86400))


def test_pressure_is_the_share_of_the_three_largest_stories():
    titles = pd.Series(["storm hits", "storm again", "storm third", "debate night", "debate",
                        "poll up", "shooting", "cats", "dogs", "storm debate"])
    rules = [StoryRule("storm", ("storm",)), StoryRule("debate", ("debate",)),
             StoryRule("polls", ("poll",)), StoryRule("crime", ("shooting",))]
    days = pd.Series(["2016-10-07"] * 10)
    out = daily_pressure(days, match_stories(titles, rules))
    # top three: storm (4), debate (3), then polls or crime (1): 7 distinct items of 10
    assert out.loc[0, "items"] == 10
    assert out.loc[0, "pressure"] == pytest.approx(0.7)
    assert out.loc[0, "top_stories"].startswith("storm (4), debate (3)")


def test_story_rules_match_at_word_starts(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("stories:\n  hacking: {any: [hack], none: [lifehack]}\n")
    (rule,) = load_story_rules(f).rules
    got = rule.matches(pd.Series(["Russia hacked DNC", "shack fire", "HACKERS", "a lifehack for hackers", None]))
    assert list(got) == [True, False, True, False, False]
    f.write_text("stories:\n  empty: {}\n")
    with pytest.raises(StoryRulesError, match="needs a non-empty .any. list"):
        load_story_rules(f)


@pytest.mark.parametrize("null", [WeekdayHourShuffle(), Jitter(3 * 3600), PoissonScreen(), CircularShift()],
                         ids=lambda n: n.name)
@pytest.mark.parametrize("seed", [1, 2])
def test_an_uncertain_announcement_outside_every_counted_stretch_counts_the_same_anywhere(null, seed):
    """over_intervals draws only the uncertain announcements whose intervals reach a stretch the
    test counts in (counted_stretches); the others stay at their best time. Drawing them too
    must change no count and no p-value: same draws of the rest, with and without them."""
    rng = np.random.default_rng(seed)
    weeks = 5
    cov = Coverage(*simulate.coverage_of(START_WEEK, weeks))
    # Dense, with short intervals too: many straddle the edge of some counted window.
    best = simulate.announcements(rng, START_WEEK, weeks, 2000)
    width = np.where(rng.random(best.size) < 0.6, rng.choice([300.0, 900.0, 1800.0, 4 * 3600.0], best.size), 0.0)
    lo = best - width * rng.random(best.size)
    hi = lo + width
    rel = np.array([cov.start + 900, cov.start + 8.4 * DAY, cov.start + 20.7 * DAY, cov.end - 1200])
    window_s = 3600.0
    live = overlapping(lo, hi, *counted_stretches(rel, window_s=window_s, null=null, coverage=cov))
    uncertain = hi - lo > 60
    pinned = uncertain & ~live
    if isinstance(null, CircularShift):
        assert not pinned.any()  # across the seam every time counts
    else:
        assert pinned.sum() > 20 and (uncertain & live).sum() > 5  # neither side is empty
    # Every window the test can count in lies inside the stretches: the observed positions and
    # every position the null's reach allows.
    starts, ends = counted_stretches(rel, window_s=window_s, null=null, coverage=cov)
    positions = [rel]
    if isinstance(null, Null):
        reach = null.draw(rel, cov, window_s, 60.0, np.random.default_rng(0), 1).reach
        for base, r in zip(rel, reach):
            steps = (np.arange(r.k_lo, r.k_hi + 1)[:, None] * r.period + np.arange(r.a, r.b + 1)[None, :]).ravel()
            positions.append(base + steps * 60.0)
    p = np.concatenate(positions)
    assert ((p[:, None] - window_s >= starts) & (p[:, None] + window_s <= ends)).any(axis=1).all()
    for d in range(5):
        anywhere = sample_within(lo, hi, best, rng, 1, 60.0)[0]
        kept = np.where(pinned, best, anywhere)
        a = coincidence_test(rel, anywhere, window_s=window_s, null=null, coverage=cov, n_surrogates=199, seed=d)
        b = coincidence_test(rel, kept, window_s=window_s, null=null, coverage=cov, n_surrogates=199, seed=d)
        for field in ("counts", "pvalues", "null_distribution"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_overlapping_agrees_with_checking_every_pair():
    rng = np.random.default_rng(3)
    for _ in range(200):
        lo = rng.integers(0, 100, 30).astype(float)
        hi = lo + rng.integers(0, 10, 30)
        s = rng.integers(0, 100, int(rng.integers(0, 6))).astype(float)
        e = s + rng.integers(0, 20, s.size)
        brute = ((lo[:, None] <= e[None, :]) & (hi[:, None] >= s[None, :])).any(axis=1)
        assert np.array_equal(overlapping(lo, hi, s, e), brute)
