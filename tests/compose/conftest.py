"""Fixtures for the static checks of the Docker side (tests/compose). Nothing here runs Docker."""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class HealthServer:
    """A local /health on 127.0.0.1 that answers `status`, to run the real probes against."""

    def __init__(self) -> None:
        owner = self
        self.status = 200

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(owner.status if self.path == "/health" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    hs = HealthServer()
    thread = threading.Thread(target=hs.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hs
    finally:
        hs.server.shutdown()
        hs.server.server_close()
        thread.join()
