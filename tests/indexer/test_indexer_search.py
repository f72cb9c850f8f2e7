"""Index design against the real node: search, stemming per language, rules matching what search finds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import ARABIC_TEXT, BUDGET_TEXT, make_article, rocket_article
from elasticsearch import AsyncElasticsearch

from newsflow_indexer.handler import Indexer
from newsflow_indexer.settings import IndexerSettings
from newsflow_search.index_setup import TEMPLATE_NAME, ensure_index
from newsflow_search.rules import Rule
from newsflow_search.search import search

pytestmark = pytest.mark.integration

NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))


def cli(*args: str, env_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEWSFLOW_ELASTICSEARCH_URL": env_url}
    return subprocess.run([NEWSFLOW, *args], capture_output=True, text=True, env=env, timeout=60)


async def test_ensure_index_is_idempotent_and_writes_only_through_the_alias(
    es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    first = await ensure_index(es, idx_settings)
    assert first.get("news-000001") and first.get("newsflow-rules") and first.get("newsflow-alerts")
    again = await ensure_index(es, idx_settings)
    assert set(again) == {"template"}
    aliases = await es.indices.get_alias(name="news")
    assert aliases["news-000001"]["aliases"]["news"]["is_write_index"] is True
    tpl = (await es.indices.get_index_template(name=TEMPLATE_NAME))["index_templates"][0]["index_template"]
    assert tpl["version"] == 2 and tpl["index_patterns"] == ["news-*"]
    mapping = (await es.indices.get_mapping(index="news-000001"))["news-000001"]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["text_ar"]["analyzer"] == "news_ar"
    assert mapping["properties"]["captions"]["properties"]["image_url"]["type"] == "keyword"


async def test_seed_like_article_found_by_search_and_fires_only_the_matching_rules(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    ix = Indexer(ready_es, idx_settings)
    for name, query in [
        ("rocket", "rocket attack"),
        ("chemical", '"chemical weapons"'),
        ("drones", "drone AND militia*"),
        ("fuzzy", "rocket attakc~2"),
        ("phrase", '"rocket attack"'),
        ("budget-en", "budget"),
    ]:
        await ix.rules.add(Rule(name=name, query=query))
    await ix.rules.add(Rule(name="rocket-fr", query="rocket", filters={"language": "fr"}))
    art = rocket_article()
    other = make_article("https://city.example.net/budget", BUDGET_TEXT)
    results = await ix.handle_batch([art, other])

    fired = {a.rule_name for a in results[0]}  # type: ignore[union-attr]
    assert fired == {"rocket", "drones", "fuzzy", "phrase"}
    assert [a.rule_name for a in results[1]] == ["budget-en"]  # type: ignore[union-attr]
    alert = next(a for a in results[0] if a.rule_name == "phrase")  # type: ignore[union-attr]
    assert alert.url == art.url and alert.article_id == art.article_id and alert.title == art.title
    assert alert.snippet and "«rocket attack»" in alert.snippet.replace("» «", " ")

    # The CLI prints the same article for the same words.
    out = cli("search", "rocket attack", "--json", env_url=idx_settings.elasticsearch_url)
    assert out.returncode == 0, out.stderr
    hits = [json.loads(line) for line in out.stdout.splitlines()]
    assert [h["url"] for h in hits] == [art.url]
    assert hits[0]["title"] == art.title and hits[0]["source"] == "news.example.org"
    assert hits[0]["published_at"].startswith(art.published_at.strftime("%Y-%m-%dT%H:%M"))  # type: ignore[union-attr]
    assert "«" in hits[0]["snippet"]
    out = cli("search", '"chemical weapons"', "--json", env_url=idx_settings.elasticsearch_url)
    assert out.returncode == 0 and out.stdout.strip() == ""
    table = cli("search", "rocket attack", "--since", "1d", env_url=idx_settings.elasticsearch_url)
    assert table.returncode == 0 and "Basra" in table.stdout


async def test_arabic_article_found_by_another_inflection_only_through_its_stemmed_field(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    ix = Indexer(ready_es, idx_settings)
    ar = make_article("https://ar.example.org/news/1", ARABIC_TEXT, title="أضرار محدودة", language="ar")
    en = rocket_article()
    assert all(isinstance(r, list) for r in await ix.handle_batch([ar, en]))
    for query in ("صاروخ", "مطارات"):  # "a missile" (the text has "the missile"), "airports" ("at the airport")
        plain = await ready_es.search(index="news", query={"match": {"text": query}})
        assert plain["hits"]["total"]["value"] == 0, "the unstemmed field must not match, or the test proves nothing"
        res = await search(ready_es, query)
        assert [h.url for h in res.hits] == [ar.url]
        assert res.hits[0].snippet and "«" in res.hits[0].snippet
        res = await search(ready_es, query, lang="ar")
        assert [h.url for h in res.hits] == [ar.url]
    assert (await search(ready_es, "صاروخ", lang="en")).hits == []
    # English stemming too: "rocket" is in the article only as "rockets"/"rocket".
    assert [h.url for h in (await search(ready_es, "landing rockets", lang="en")).hits] == [en.url]


async def test_search_filters_since_and_language(ready_es: AsyncElasticsearch, idx_settings: IndexerSettings) -> None:
    ix = Indexer(ready_es, idx_settings)
    old = make_article(
        "https://old.example.org/a",
        "An old rocket attack report from the archive.",
        published_at=datetime.now(UTC) - timedelta(days=30),
    )
    new = rocket_article()
    await ix.handle_batch([old, new])
    assert {h.url for h in (await search(ready_es, "rocket attack")).hits} == {old.url, new.url}
    assert [h.url for h in (await search(ready_es, "rocket attack", since="7d")).hits] == [new.url]
    assert (await search(ready_es, "rocket attack", lang="fr")).hits == []
    test = cli("rules", "test", "rocket attack", "--json", env_url=idx_settings.elasticsearch_url)
    assert test.returncode == 0, test.stderr
    assert [json.loads(x)["url"] for x in test.stdout.splitlines()] == [new.url]


async def test_rules_cli_add_list_remove_and_refuse_a_broken_query(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings, tmp_path: Path
) -> None:
    url = idx_settings.elasticsearch_url
    out = cli(
        "rules",
        "add",
        "drones",
        "drone AND militia*",
        "--lang",
        "en",
        "--slack",
        "https://hooks.slack.example/services/T0/B0/x",
        env_url=url,
    )
    assert out.returncode == 0 and "added rule 'drones'" in out.stdout, out.stderr
    bad = cli("rules", "add", "broken", "rocket AND (", env_url=url)
    assert bad.returncode == 1 and "invalid query" in bad.stderr
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n  - {name: port, query: 'Qasr', channels: [log]}\n")
    assert cli("rules", "add", "--file", str(f), env_url=url).returncode == 0
    listed = cli("rules", "list", "--json", env_url=url)
    rules = {r["name"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert set(rules) == {"drones", "port"}
    assert rules["drones"]["filters"]["language"] == ["en"]
    assert rules["drones"]["channels"][0] == {"type": "slack", "url": "https://hooks.slack.example/services/T0/B0/x"}
    assert cli("rules", "remove", "drones", env_url=url).returncode == 0
    assert cli("rules", "remove", "drones", env_url=url).returncode == 1
    listed = cli("rules", "list", "--json", env_url=url)
    assert [json.loads(x)["name"] for x in listed.stdout.splitlines()] == ["port"]


async def test_bulk_refresh_true_makes_a_batch_searchable_and_alerting_without_the_scheduled_refresh(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    # With scheduled refreshes off, "wait_for" would block until one happens: only an immediate
    # refresh of the bulk lets the rules' _msearch and a search see the batch at once.
    await ready_es.indices.put_settings(index="news-000001", settings={"index": {"refresh_interval": "-1"}})
    ix = Indexer(ready_es, idx_settings.model_copy(update={"bulk_refresh": "true"}))
    await ix.rules.add(Rule(name="rocket", query="rocket attack"))
    art = rocket_article()
    results = await ix.handle_batch([art])
    assert [a.rule_name for a in results[0]] == ["rocket"]  # type: ignore[union-attr]
    res = await ready_es.search(index="news", query={"match_phrase": {"text": "rocket attack"}})
    assert [h["_id"] for h in res["hits"]["hits"]] == [art.article_id]
