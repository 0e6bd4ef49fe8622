"""The bundled 2016 case study: what to import, from which file, with what attribution."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import CASE_2016_DIR

TIMELINE = "timeline_2016.csv"


@dataclass(frozen=True)
class StreamFile:
    file: str
    source: str
    role: str
    time_column: str
    text_column: str
    id_column: str | None
    author_column: str | None
    attribution: str
    label: str
    caveat: str | None = None


STREAMS = (
    StreamFile(
        "trump_tweets_2016.csv.gz", "trump_tweets", "announcement", "created_at_utc", "text",
        "tweet_id", None,
        "Tweets of @realDonaldTrump, 2016-09-01..11-15, from mgwalker/trump_tweets_sqlite "
        "(databases/2016-condensed.sqlite @ d7bbb379), built from bpb27/trump_tweet_data_archive.",
        "@realDonaldTrump tweets",
    ),
    StreamFile(
        "clinton_tweets_2016.csv.gz", "clinton_tweets", "announcement", "created_at_utc", "text",
        None, None,
        "Tweets of @HillaryClinton (no retweets), 2016-09-01..11-15, from "
        "djsaunde/EstimatingAndExplainingTwitterEngagement (data/HillaryClinton_tweets.csv @ 3da70ca1).",
        "@HillaryClinton tweets",
    ),
    StreamFile(
        "ira_newsfeed_2016-10-01_to_2016-10-14.csv.gz", "ira_newsfeed", "news",
        "publish_date_utc", "content", None, "author",
        "IRA 'NewsFeed' accounts re-posting real headlines, 2016-10-01..14; FiveThirtyEight's "
        "russian-troll-tweets (Linvill & Warren, Clemson University), via "
        "bet4a/russian-troll-tweets-by-author @ 9733cadc. A lagged view of the news.",
        "headline stream (IRA NewsFeed accounts)",
        "Automated accounts re-posting real outlets' headlines minutes to hours after publication: "
        "a lagged view of the news, and only 1-14 Oct 2016 (two weeks of comparison).",
    ),
)


def files_present() -> list[str]:
    wanted = [TIMELINE] + [s.file for s in STREAMS]
    return [f for f in wanted if not (CASE_2016_DIR / f).exists()]
