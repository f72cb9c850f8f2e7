"""The web service in docker-compose.yml: built like every service, published on loopback only, scalable,
probed on its own /health, and read-only unless the operator sets a token."""

from __future__ import annotations

import pytest
from compose_loading import interpolate

from newsflow_web.settings import WebSettings

pytestmark = pytest.mark.unit


def test_web_is_built_from_the_one_dockerfile(services) -> None:
    build = services["web"]["build"]
    assert build["dockerfile"] == "docker/newsflow/Dockerfile" and build["context"] == "."
    assert build["args"] == {"PACKAGE": "newsflow-web", "COMMAND": "newsflow-web"}


def test_web_waits_for_healthy_servers_and_init(services) -> None:
    deps = services["web"]["depends_on"]
    assert deps["redis"]["condition"] == deps["elasticsearch"]["condition"] == "service_healthy"
    assert deps["init"]["condition"] == "service_completed_successfully"


def test_web_is_published_on_loopback_with_a_port_per_replica(compose_raw) -> None:
    web = interpolate(compose_raw, {})["services"]["web"]
    assert "container_name" not in web
    (port,) = web["ports"]
    host, ports, target = port.split(":")
    assert host == "127.0.0.1" and target == "8080"
    first, last = (int(p) for p in ports.split("-"))
    assert last > first, "a range, so `--scale web=N` gives each replica its own host port"


def test_web_healthcheck_probes_its_own_port(services) -> None:
    web = services["web"]
    test = web["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{web['environment']['NEWSFLOW_WEB_PORT']}/health" in test[3]


@pytest.mark.parametrize(("token", "writable"), [("", False), ("a-long-enough-token", True)])
def test_web_settings_accept_the_compose_environment(compose_raw, token: str, writable: bool) -> None:
    env = interpolate(compose_raw, {"NEWSFLOW_WEB_TOKEN": token})["services"]["web"]["environment"]
    fields = {k.removeprefix("NEWSFLOW_").lower(): v for k, v in env.items()}
    assert set(fields) <= set(WebSettings.model_fields), set(fields) - set(WebSettings.model_fields)
    settings = WebSettings(**fields)
    assert settings.web_host == "0.0.0.0" and settings.web_port == 8080
    assert (settings.web_token is not None) is writable
