"""Pure logic of the indexer: documents, queries, rules files, payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_article, rocket_article
from pydantic import ValidationError

from newsflow_indexer.alerts import alert_id, delivery_key, fingerprint_id
from newsflow_indexer.settings import IndexerSettings
from newsflow_search.documents import doc_version, primary_language, to_document
from newsflow_search.index_setup import NEWS_TEMPLATE, news_template, resource
from newsflow_search.query import best_snippet, build_query, parse_since, search_fields
from newsflow_search.rules import Rule, load_rules_file

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_language_copies_only_for_the_articles_language() -> None:
    ar = make_article("https://a.example/1", "نص عربي", title="عنوان", language="ar-EG")
    doc = to_document(ar)
    assert doc["language"] == "ar"
    assert doc["text_ar"] == "نص عربي" and doc["title_ar"] == "عنوان"
    assert not any(k.endswith("_en") for k in doc)
    it = to_document(make_article("https://a.example/2", "testo italiano", language="it"))
    assert it["language"] == "it" and not any(k.startswith("text_") for k in it)
    caps = to_document(rocket_article())
    assert caps["captions_en"] == ["Cranes at the port of Umm Qasr after the strike."]
    assert caps["captions"][0]["image_url"].endswith("cranes.jpg")
    assert "blocks" not in caps


def test_every_document_field_is_in_the_strict_mapping() -> None:
    props = resource(NEWS_TEMPLATE)["template"]["mappings"]["properties"]
    for lang in ("en", "ar", "fr", "de", "es", "ru"):
        doc = to_document(make_article(f"https://a.example/{lang}", "text", language=lang))
        assert set(doc) <= set(props), set(doc) - set(props)


def test_template_follows_settings() -> None:
    tpl = news_template(IndexerSettings(index_alias="wire"), replicas=1)
    assert tpl["index_patterns"] == ["wire-*"]
    assert tpl["template"]["settings"]["index"]["number_of_replicas"] == 1
    analyzers = tpl["template"]["settings"]["analysis"]["analyzer"]
    assert analyzers["news_de"]["filter"] == ["news_de_hunspell", "lowercase"]


def test_version_is_parse_time_in_ms() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    a = make_article("https://a.example/v", "x", parsed_at=t)
    assert doc_version(a) == int(t.timestamp() * 1000)
    assert doc_version(make_article("https://a.example/v", "x", parsed_at=t + timedelta(seconds=1))) > doc_version(a)


@pytest.mark.parametrize(("tag", "want"), [("en-US", "en"), ("EN_gb", "en"), ("ar", "ar"), ("", None), (None, None)])
def test_primary_language(tag: str | None, want: str | None) -> None:
    assert primary_language(tag) == want


def test_query_uses_stemmed_fields_of_the_filtered_language_and_ands_words() -> None:
    q = build_query("rocket attack", {"language": "fr", "domain": ["a.example"]}, since="now-7d", ids=["x"])
    qs = q["bool"]["must"][0]["query_string"]
    assert qs["default_operator"] == "AND"
    assert "text_fr" in qs["fields"] and "text_en" not in qs["fields"] and "text" in qs["fields"]
    filters = q["bool"]["filter"]
    assert {"terms": {"language": ["fr"]}} in filters and {"terms": {"domain": ["a.example"]}} in filters
    assert {"ids": {"values": ["x"]}} in filters
    assert all(f"text_{lang}" in search_fields() for lang in ("en", "ar", "fr", "de", "es", "ru"))
    assert [f for f in search_fields("it") if f.startswith("text")] == ["text"]
    # A batch's languages narrow the stemmed fields; a rule's language filter narrows them further.
    fields = build_query("x", present_languages=["ar", "en"])["bool"]["must"][0]["query_string"]["fields"]
    assert {f for f in fields if f.startswith("text_")} == {"text_en", "text_ar"}
    fields = build_query("x", {"language": ["en", "fr"]}, present_languages=["ar", "en"])["bool"]["must"][0][
        "query_string"
    ]["fields"]
    assert {f for f in fields if f.startswith("text")} == {"text", "text_en"}
    with pytest.raises(ValueError, match="unknown filter"):
        build_query("x", {"author": "me"})


@pytest.mark.parametrize(
    ("value", "want"),
    [("7d", "now-7d"), ("12h", "now-12h"), ("2w", "now-2w"), ("2026-01-01", "2026-01-01"), (None, None)],
)
def test_parse_since(value: str | None, want: str | None) -> None:
    assert parse_since(value) == want


def test_best_snippet_prefers_body_text() -> None:
    hl = {"captions.text": ["a «rocket» caption"], "text_en": ["the  «rockets»\nfell"]}
    assert best_snippet(hl) == "the «rockets» fell"
    assert best_snippet({"captions_en": ["c «x»"]}) == "c «x»"
    assert best_snippet(None) is None


def test_rules_yaml_shorthand_and_the_repository_files(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text(
        "rules:\n"
        "  - name: r1\n    query: '\"rocket attack\"'\n"
        "    filters: {language: en, domain: [a.example, b.example]}\n"
        "    channels: [log, 'https://hooks.example/x', {webhook: 'https://hooks.slack.example/y', slack: true}]\n"
        "  - name: r2\n    query: drone AND militia*\n"
    )
    r1, r2 = load_rules_file(f)
    assert r1.filters.language == ["en"] and r1.filters.domain == ["a.example", "b.example"]
    assert [(c.type, c.url) for c in r1.channels] == [
        ("log", None),
        ("webhook", "https://hooks.example/x"),
        ("slack", "https://hooks.slack.example/y"),  # the old spelling of a Slack channel still reads
    ]
    assert [c.type for c in r2.channels] == ["log"]  # the default channel
    for name in ("rules.yaml", "rules.yaml.example"):
        assert load_rules_file(ROOT / name), name


def test_invalid_rules_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Rule(name="x", query="q", channels=[{"type": "webhook", "url": "ftp://nope"}])
    with pytest.raises(ValidationError):
        Rule(name="", query="q")
    with pytest.raises(ValidationError):
        Rule(name="x", query="q", filters={"author": "me"})
    f = tmp_path / "dupes.yaml"
    f.write_text("rules:\n  - {name: a, query: x}\n  - {name: a, query: y}\n")
    with pytest.raises(ValueError, match="unique"):
        load_rules_file(f)


def test_rule_round_trips_through_its_document() -> None:
    r = Rule(name="n", query="q", filters={"section": "Politics"}, channels=["log", "https://h.example/x"])
    assert Rule.from_doc(r.to_doc()) == r


def test_ids_are_stable_and_distinct() -> None:
    assert alert_id("r", "a") == alert_id("r", "a") != alert_id("r", "b") != alert_id("s", "a")
    assert fingerprint_id("r", "00ff") != fingerprint_id("s", "00ff")
    t = datetime.now(UTC)
    a = make_article("https://a.example/k", "x", parsed_at=t)
    later = a.model_copy(update={"parsed_at": t + timedelta(seconds=1)})
    assert delivery_key(a) == delivery_key(a.model_copy()) != delivery_key(later)


def test_each_service_reads_only_its_own_settings() -> None:
    from newsflow_fetcher.settings import FetcherSettings
    from newsflow_parser.settings import ParserSettings

    indexer = IndexerSettings(elasticsearch_url="http://es.example:9200,http://es2.example:9200/")
    assert indexer.elasticsearch_nodes == ["http://es.example:9200", "http://es2.example:9200"]
    assert indexer.index_alias == "news" and "rules_file" in IndexerSettings.model_fields
    assert "elasticsearch_url" not in ParserSettings.model_fields and "rules_file" not in ParserSettings.model_fields
    assert "elasticsearch_url" not in FetcherSettings.model_fields and "feeds_file" in FetcherSettings.model_fields
    # Delivery is the notifier's: the indexer has no webhook settings left.
    assert not [f for f in IndexerSettings.model_fields if f.startswith(("webhook", "smtp"))]
