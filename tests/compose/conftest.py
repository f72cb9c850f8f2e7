"""Fixtures for the static checks of the Docker side (tests/compose). Nothing here runs Docker."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from compose_loading import COMPOSE_FILE, ROOT, interpolate, load_yaml


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    """The file as written: variables not yet substituted."""
    return load_yaml(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def compose(compose_raw: dict[str, Any]) -> dict[str, Any]:
    """The file as Compose sees it with no variables set: every default applied."""
    return interpolate(compose_raw, {})


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="session")
def es_version() -> str:
    """The Elasticsearch version the tests run against: scripts/es-node/pom.xml, property es.version."""
    tree = ET.parse(ROOT / "scripts" / "es-node" / "pom.xml")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = tree.find("m:properties/m:es.version", ns)
    if node is None:
        node = tree.find("properties/es.version")
    assert node is not None and node.text, "scripts/es-node/pom.xml has no <es.version> property"
    version = node.text.strip()
    assert re.fullmatch(r"8\.\d+\.\d+", version), version
    return version
