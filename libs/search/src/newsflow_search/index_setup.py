"""The init step: index template, first backing index with the write alias, rules and alerts indices.

Idempotent; `newsflow init` and the indexer's start-up both call it. Nothing here is ever created
implicitly by a first write: articles are written with `require_alias`.
"""

from __future__ import annotations

import copy
import json
import logging
from functools import cache
from importlib import resources
from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError

from newsflow_search.settings import SearchSettings

log = logging.getLogger("newsflow.indexer.setup")

TEMPLATE_NAME = "newsflow-news"
NEWS_TEMPLATE = "news-template.v1.json"
RULES_INDEX = "rules-index.v1.json"
ALERTS_INDEX = "alerts-index.v1.json"


@cache
def _resource(name: str) -> dict[str, Any]:
    return json.loads(resources.files("newsflow_search.resources").joinpath(name).read_text("utf-8"))


def resource(name: str) -> dict[str, Any]:
    return copy.deepcopy(_resource(name))


def news_template(settings: SearchSettings, replicas: int = 0) -> dict[str, Any]:
    tpl = resource(NEWS_TEMPLATE)
    tpl["index_patterns"] = [f"{settings.index_alias}-*"]
    idx = tpl["template"]["settings"]["index"]
    idx["number_of_shards"] = settings.index_shards
    idx["number_of_replicas"] = replicas
    return tpl


async def replicas_for(es: AsyncElasticsearch, settings: SearchSettings) -> int:
    """The configured replicas, or, unset, 1 when the cluster has more than one data node."""
    if settings.index_replicas is not None:
        return settings.index_replicas
    health = await es.cluster.health()
    return 1 if int(health.get("number_of_data_nodes", 1)) > 1 else 0


def first_index(alias: str) -> str:
    return f"{alias}-000001"


async def ensure_index(es: AsyncElasticsearch, settings: SearchSettings) -> dict[str, bool]:
    """Put the template and create what is missing. Returns what was created (for the init step's report)."""
    # The first template that names a hunspell dictionary makes the node load it (the Arabic one takes
    # seconds): more than a bulk request's timeout.
    es = es.options(request_timeout=max(120.0, settings.request_timeout_s))
    done: dict[str, bool] = {}
    replicas = await replicas_for(es, settings)
    tpl = news_template(settings, replicas)
    # The template is always put: a newer version in the package applies to the next rolled-over index.
    await es.indices.put_index_template(name=f"{TEMPLATE_NAME}", **tpl)
    done["template"] = True

    alias = settings.index_alias
    if not await es.indices.exists_alias(name=alias):
        if await es.indices.exists(index=alias):
            raise RuntimeError(f"{alias!r} is a concrete index, not an alias: move its documents and delete it")
        try:
            await es.indices.create(
                index=first_index(alias), aliases={alias: {"is_write_index": True}}, wait_for_active_shards="1"
            )
            done[first_index(alias)] = True
        except BadRequestError as e:
            # Another replica's init won the race: fine as long as the alias is there now.
            if e.error != "resource_already_exists_exception":
                raise
    else:
        # The mapping is strict, so a field a newer template adds must reach the backing indices that exist
        # before the first document carrying it does. Mappings only grow: a changed field fails here, loudly.
        await es.indices.put_mapping(index=alias, **_mapping_update(tpl["template"]["mappings"]))
    for name, res in ((settings.rules_index, RULES_INDEX), (settings.alerts_index, ALERTS_INDEX)):
        if await es.indices.exists(index=name):
            # Mappings only grow: new fields of a newer resource version are added in place.
            await es.indices.put_mapping(index=name, **_mapping_update(resource(res)["mappings"]))
            continue
        body = resource(res)
        body["settings"]["index"]["number_of_replicas"] = replicas
        try:
            await es.indices.create(index=name, **body)
            done[name] = True
        except BadRequestError as e:
            if e.error != "resource_already_exists_exception":
                raise
    await es.cluster.health(
        index=f"{alias},{settings.rules_index},{settings.alerts_index}",
        wait_for_status="green" if replicas else "yellow",
        timeout="30s",
    )
    return done


def _mapping_update(mappings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mappings.items() if k in ("properties", "_meta", "dynamic")}
