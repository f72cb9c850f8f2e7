"""The extraction on the project's own fixture pages: body, captions, chrome, metadata, language."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from newsflow_extract.errors import ExtractionError
from newsflow_extract.extract import extract
from newsflow_extract.textutil import content_hash, hamming, key
from newsflow_shared.models import FeedEntry, MediaItem, ParsedArticle

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"

# Page chrome that must never reach the text (from the seed page and the usual news layouts).
CHROME = [
    "Do you like this article",
    "Comment(s)",
    "Comment Policy",
    "Denotes Required Field",
    "1500 / 1500",
    "Related Articles",
    "Related Stories",
    "Sign up for our newsletter",
    "newsletter",
    "We use cookies",
    "cookie",
    "All rights reserved",
    "Copyright",
    "©",
    "Share this",
    "Facebook",
    "Twitter",
    "WhatsApp",
    "Most Read",
    "Trending",
    "Leave a Reply",
    "Required fields are marked",
    "Comments (3)",
    "Accept all",
]


def page(name: str, url: str | None = None, entry: FeedEntry | None = None) -> ParsedArticle:
    html = (FIXTURES / name).read_text(encoding="utf-8")
    return extract(html, url or f"https://news.example/{name.removesuffix('.html')}", entry)


def feed_entry(url: str, **fields: Any) -> FeedEntry:
    """The feed's item for the page at `url`, carrying `fields`."""
    return FeedEntry(url=url, link=url, article_id="0" * 32, feed_url="https://news.example/feed.xml", **fields)


def assert_captions_once_and_not_in_text(a: ParsedArticle, expected: list[str]) -> None:
    got = [key(c.text) for c in a.captions]
    for cap in expected:
        k = key(cap)
        assert got.count(k) == 1, f"caption {cap!r} appears {got.count(k)} times in {got}"
        assert k not in key(a.text), f"caption {cap!r} leaked into the text"
    assert len(got) == len(expected), got


def assert_no_chrome(a: ParsedArticle) -> None:
    low = a.text.lower()
    for phrase in CHROME:
        assert phrase.lower() not in low, f"chrome {phrase!r} in text"


def headings(a: ParsedArticle) -> list[str]:
    return [b.text for b in a.blocks if b.kind == "h"]


def test_cms_page_modelled_on_the_seed_article() -> None:
    a = page("cms_politics.html")
    assert a.title == "With harbour blockade, rift widens between Velmar council and river militias"
    assert a.authors == ["Nadia el-Sayegh"]
    assert a.section == "Politics"
    assert a.published_at == datetime(2022, 2, 1, 6, 30, tzinfo=UTC)
    assert a.published_source == "meta"
    assert a.modified_at == datetime(2022, 2, 1, 11, 5, tzinfo=UTC)
    assert a.language == "en" and a.language_source == "html"
    assert a.site_name == "Coastline Monitor"
    assert a.tags == ["Velmar", "Port Anselm"]
    # printed twice (caption + alt/title), kept once, credit split off
    assert_captions_once_and_not_in_text(
        a,
        [
            "River Brigade commander Tomas Orlet addresses fighters at a guard post near Port Anselm on"
            " January 9, 2022.",
            "Smoke rises from a fuel tank at the Port Anselm depot after Sunday's strike.",
        ],
    )
    assert [c.credit for c in a.captions] == ["Velmar Press Office", "Port Anselm Authority"]
    assert a.captions[1].image_url == "https://cdn.coastline-monitor.example/images/2022/02/tank-fire.jpg"
    assert "Velmar Press Office" not in a.text and "Port Anselm Authority" not in a.text
    assert_no_chrome(a)
    assert headings(a) == ["Commanders go their own way", "Money and weapons", "Election aftermath"]
    # the section label, headline and byline are page furniture, not body
    assert not a.text.startswith(("Politics", "With harbour blockade", "By "))
    assert a.text.startswith("The River Brigade's refusal to lift its blockade")
    assert a.text.rstrip().endswith('even when it arrives in a mortar tube."')
    # sub-headings sit between the paragraphs they belong to, in order
    text = a.text
    assert text.index("four shells landed".capitalize()) < text.index("Commanders go their own way")
    positions = [text.index(h) for h in ("Commanders go their own way", "Money and weapons", "Election aftermath")]
    assert positions == sorted(positions)
    assert text.index("Money and weapons") < text.index("workshops in the old cannery district")
    assert a.word_count > 450
    assert a.top_image == "https://cdn.coastline-monitor.example/images/2022/02/harbour-cranes.jpg"


def test_figure_gallery_with_lightbox_copies() -> None:
    a = page("gallery.html")
    caps = [
        "Volunteers cheer as the lamp of the North Mole lighthouse turns for the first time since 1992",
        "Engineer Ruth Calloway checks the clockwork that turns the Fresnel lens at Grey Point",
        "Families watch from the sea wall as the beams sweep across the bay",
    ]
    assert_captions_once_and_not_in_text(a, caps)
    assert [c.credit for c in a.captions] == ["Owen Trask", "Owen Trask", "Harbour Heritage Trust"]
    # lazy-loaded images: the real URL, not the placeholder
    assert a.captions[1].image_url == "https://img.harbourgazette.example/gallery/lamps-2.jpg"
    assert all(c.source == "figcaption" for c in a.captions)
    assert "Photo:" not in a.text
    assert_no_chrome(a)
    assert headings(a) == ["Thirty years of darkness", "What happens next"]
    assert a.authors == ["Owen Trask"]
    assert a.published_at == datetime(2023, 10, 14, 21, 15, tzinfo=UTC)
    assert a.section == "Culture"
    assert a.title == "In pictures: the night the lighthouse lamps came back"


def test_caption_divs_outside_figures() -> None:
    a = page("caption_divs.html")
    assert_captions_once_and_not_in_text(
        a,
        [
            "Goats graze between rows of young apple trees at the Haskell orchard near Linden.",
            "Shepherd Ana Ribeiro moves the portable fence with her dog Pico.",
        ],
    )
    assert a.captions[0].credit == "Carla Mendes / Valley Ledger"
    assert a.captions[1].image_url == "https://valleyledger.example/wp-content/uploads/2024/05/shepherd.jpg"
    assert "Valley Ledger photo" not in a.text
    assert_no_chrome(a)
    assert headings(a) == ["Not every orchard is suited"]
    # "By Carla Mendes, Staff Writer" in <meta name=author>: the name only
    assert a.authors == ["Carla Mendes"]
    assert a.published_at == datetime(2024, 5, 6, 14, 0, tzinfo=UTC)
    assert a.modified_at == datetime(2024, 5, 6, 23, 20, tzinfo=UTC)
    assert a.title == "Orchard growers turn to goats to keep weeds down"


def test_json_ld_only_metadata() -> None:
    a = page("jsonld_only.html")
    assert a.title == "Divers count more kelp than expected in first survey since the heatwave"
    assert a.authors == ["Mia Fenwick", "Joel Ashdown"]
    assert (a.published_at, a.published_source) == (datetime(2021, 7, 19, 8, 45, tzinfo=UTC), "json-ld")
    assert (a.modified_at, a.modified_source) == (datetime(2021, 7, 19, 22, 0, tzinfo=UTC), "json-ld")
    assert a.section == "Science"
    assert a.tags == ["kelp", "marine heatwave", "citizen science"]
    assert (a.language, a.language_source) == ("en", "json-ld")
    assert a.site_name == "Tidewater Times"
    assert a.description == "Volunteer divers found kelp recovering faster than scientists had feared."
    # the caption is only in JSON-LD, and the page also prints it as a paragraph: out of the text
    kelp = "A volunteer diver measures a kelp frond off Cape Wendell during the July survey."
    assert_captions_once_and_not_in_text(a, [kelp])
    assert a.captions[0].source == "json-ld" and a.captions[0].credit == "Tidewater Times / Mia Fenwick"
    assert "sixty divers" in a.text


def test_arabic_page() -> None:
    a = page("arabic.html")
    assert (a.language, a.language_source) == ("ar", "html")
    assert a.authors == ["سلمى الحداد"]  # without "بقلم" (by)
    assert a.title == "مزارعو الواحة يعودون إلى الري بالتنقيط بعد موسم جفاف قاسٍ"
    assert_captions_once_and_not_in_text(a, ["مزارع يتفقد أنابيب الري بالتنقيط في أحد بساتين النخيل"])
    assert a.captions[0].credit == "صحيفة الساحل"
    assert headings(a) == ["توفير في المياه والكلفة"]
    for chrome in ("مقالات ذات صلة", "شارك المقال", "جميع الحقوق محفوظة", "الرئيسية"):
        assert chrome not in a.text
    assert a.published_at == datetime(2023, 8, 12, 7, 0, tzinfo=UTC)


def test_persian_page_without_a_declared_language_is_detected() -> None:
    a = page("persian_nolang.html")
    assert (a.language, a.language_source) == ("fa", "detected")
    assert a.title == "بازگشایی کتابخانه قدیمی شهر پس از سه سال مرمت"
    assert a.published_at is None and a.authors == []


def test_comments_and_related_links_stay_out() -> None:
    a = page("comments_related.html")
    assert_no_chrome(a)
    for comment in (
        "walked home from the late shift",
        "Who is going to ride these",
        "riverside_resident",
        "Tram extension to the airport",
        "New cycle lanes",
        "Water main bursts",
    ):
        assert comment not in a.text
    assert a.authors == ["Hannah Kowalski", "Ben Achebe"]
    assert "3 hours ago" not in a.text and "Updated" not in a.text
    assert "this changes everything" in a.text  # the blockquote is article text
    assert [b.kind for b in a.blocks].count("li") == 2
    assert headings(a) == ["Cost questions remain"]
    assert a.captions == []  # teaser images are not the article's
    assert a.published_at == datetime(2025, 3, 4, 18, 20, tzinfo=UTC)
    assert a.tags == ["transport", "night buses", "city council"]


def test_feed_entry_fills_what_the_page_lacks() -> None:
    url = "https://news.example/persian_nolang"
    entry = feed_entry(
        url,
        feed_title="News Example",
        title="Feed title",
        authors=["By Parisa Karimi"],
        published_at=datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
        tags=["culture"],
        media=[
            MediaItem(
                url="https://news.example/library.jpg",
                caption="The reading room after the restoration",
                credit="City archive",
            )
        ],
    )
    a = page("persian_nolang.html", url, entry)
    assert a.title == "بازگشایی کتابخانه قدیمی شهر پس از سه سال مرمت"  # the page's own title wins
    assert a.authors == ["Parisa Karimi"]
    assert (a.published_at, a.published_source) == (datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "feed")
    assert a.tags == ["culture"]
    assert a.site_name == "News Example" and a.feed_url == "https://news.example/feed.xml"
    assert [(c.text, c.credit, c.source) for c in a.captions] == [
        ("The reading room after the restoration", "City archive", "feed")
    ]
    assert a.top_image == "https://news.example/library.jpg"


def test_feed_caption_equal_to_page_caption_is_kept_once() -> None:
    url = "https://news.example/gallery"
    cap = "Families watch from the sea wall as the beams sweep across the bay"
    entry = feed_entry(
        url, media=[MediaItem(url="https://img.harbourgazette.example/gallery/lamps-3.jpg", caption=cap)]
    )
    a = page("gallery.html", url, entry)
    assert [key(c.text) for c in a.captions].count(key(cap)) == 1


def test_dates_in_the_future_are_refused() -> None:
    html = (FIXTURES / "comments_related.html").read_text(encoding="utf-8")
    html = html.replace("2025-03-04T18:20:00Z", "2999-03-04T18:20:00Z")
    a = extract(html, "https://news.example/local/2025/03/04/night-buses")
    assert a.published_at == datetime(2025, 3, 4, tzinfo=UTC) and a.published_source == "url"
    now = datetime.now(UTC)
    for name in FIXTURES.glob("*.html"):
        if name.stat().st_size > 1000:
            art = page(name.name)
            assert art.published_at is None or art.published_at <= now


def test_ids_fingerprints_and_syndicated_copies() -> None:
    a = page("cms_politics.html", "https://coastline-monitor.example/en/articles/x")
    assert len(a.article_id) == 32 and a.domain == "coastline-monitor.example"
    assert len(a.simhash) == 16 and int(a.simhash, 16) > 0
    assert a.content_hash == content_hash(a.text)
    # the same story in another site's layout: same text, same hash; one changed sentence: close simhash
    paras = "".join(f"<p>{b.text}</p>" if b.kind == "p" else f"<h3>{b.text}</h3>" for b in a.blocks)
    copy = (
        "<html><head><title>Wire copy</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<div class='story-body'>{paras}</div><footer>(c) Other Site</footer></body></html>"
    )
    b = extract(copy, "https://other.example/wire/1")
    assert b.content_hash == a.content_hash
    edited = extract(copy.replace("nobody was hurt", "two guards were slightly hurt"), "https://other.example/wire/2")
    assert edited.content_hash != a.content_hash
    assert hamming(edited.simhash, a.simhash) <= 6
    unrelated = page("gallery.html")
    assert hamming(unrelated.simhash, a.simhash) > 12


def test_no_cross_document_deduplication() -> None:
    # trafilatura's deduplicate option would drop text seen in an earlier document of the process
    first = page("caption_divs.html")
    for _ in range(3):
        again = page("caption_divs.html")
        assert again.text == first.text


def test_moderately_broken_markup_is_still_an_article() -> None:
    html = (FIXTURES / "cms_politics.html").read_text(encoding="utf-8")
    broken = html.replace("</p>", "", 10).replace("</div>", "", 5).replace("</html>", "").replace("</body>", "")
    a = extract(broken, "https://news.example/broken")
    assert "Commanders go their own way" in a.text and a.word_count > 400


@pytest.mark.parametrize(
    ("name", "reason"),
    [("broken.html", "broken-html"), ("empty.html", "no-content"), ("binary.bin", "binary")],
)
def test_bad_pages_fail_with_a_reason(name: str, reason: str) -> None:
    body = (FIXTURES / name).read_bytes().decode("utf-8", errors="replace")
    with pytest.raises(ExtractionError) as err:
        extract(body, f"https://news.example/{name}")
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("   \n\t ", "no-content"),
        ("<html><head><title>x</title></head><body></body></html>", "no-content"),
        # a sentence is kept by the fallback ladder (test_parser_ladder.py); two words are not an article
        ("<html><body><div><p>Closed today.</p></div></body></html>", "not-an-article"),
        # a few NULs do not make text binary (issue 16); mostly control bytes do
        ("plain text \x00\x01\x02 with NUL bytes", "no-content"),
        ("\x00\x01\x02\x03 data \x04\x05\x06\x07" * 50, "binary"),
        ("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj", "binary"),
        ("<html><body>" + "<div><a href='/x'>Home</a></div>" * 5 + "</body></html>", "not-an-article"),
    ],
)
def test_edge_inputs(html: str, reason: str) -> None:
    with pytest.raises(ExtractionError) as err:
        extract(html, "https://news.example/edge")
    assert err.value.reason == reason
