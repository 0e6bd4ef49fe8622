"""The link normaliser: one canonical form per document, so re-posted links dedup."""

import pytest

from pipeline.urls import normalize_url

CASES = [
    # (raw, normalised)
    ("https://Example.COM/Story?id=7#comments", "https://example.com/Story?id=7"),
    ("https://example.com/a?utm_source=rss&utm_medium=feed&id=1", "https://example.com/a?id=1"),
    ("https://example.com/a?fbclid=XYZ&gclid=1&b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("https://example.com", "https://example.com/"),
    ("  https://example.com/a  ", "https://example.com/a"),
    ("https://example.com/a?b=&a=1", "https://example.com/a?a=1&b="),
    ("https://example.com./a", "https://example.com/a"),
    ("https://example.com/Path/Case", "https://example.com/Path/Case"),  # paths are case-sensitive
    ("https://www.nytimes.com/2016/10/08/us/politics/donald-trump-women.html?smid=tw-nytimes&smtyp=cur",
     "https://www.nytimes.com/2016/10/08/us/politics/donald-trump-women.html"),
    ("ftp://example.com/a", None),
    ("mailto:someone@example.com", None),
    ("javascript:alert(1)", None),
    ("/relative/only", None),
    ("", None),
    (None, None),
    ("http://[::1", None),
]


@pytest.mark.parametrize("raw,expected", CASES)
def test_normalize_url(raw, expected):
    assert normalize_url(raw) == expected
