"""docker-compose.yml: valid against the Compose Specification, and true to the project's rules."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from compose_loading import (
    COMPOSE_FILE,
    WORKERS,
    InterpolationError,
    interpolate,
    interpolate_str,
    load_yaml,
    parse_duration_s,
)

pytestmark = pytest.mark.unit

ONE_SHOTS = ("init", "cli")
CORE = ("redis", "elasticsearch", "init", *WORKERS)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    # The Compose Specification's own schema (compose-spec/compose-spec, schema/compose-spec.json),
    # as vendored by check-jsonschema with its licence; nothing is fetched at test time.
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text("utf-8")
    schema = json.loads(text)
    assert schema.get("title") == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


# --- the schema -----------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(validator, compose) -> None:
    assert _errors(validator, compose) == []


def test_schema_check_rejects_what_compose_would_reject(validator, compose) -> None:
    # The same check must fail on a broken file, or the test above proves nothing.
    broken = copy.deepcopy(compose)
    broken["services"]["parser"]["depends_on"]["redis"]["condition"] = "service_ready"
    broken["services"]["indexer"]["restrat"] = "always"
    broken["services"]["redis"]["healthcheck"]["intervall"] = "5s"
    errors = _errors(validator, broken)
    assert any("parser/depends_on" in e for e in errors), errors
    assert any("indexer" in e and "restrat" in e for e in errors), errors
    assert any("redis/healthcheck" in e and "intervall" in e for e in errors), errors


def test_runs_with_no_variables_set(compose_raw) -> None:
    # Every ${VAR} has a default: `docker compose up` on a fresh clone needs no .env file.
    text = json.dumps(interpolate(compose_raw, {}))
    assert "${" not in text


def test_variables_override_defaults(compose_raw) -> None:
    env = {"NEWSFLOW_ES_HEAP": "1g", "NEWSFLOW_LOG_LEVEL": "DEBUG", "NEWSFLOW_FEEDS_FILE": "/srv/feeds.yaml"}
    doc = interpolate(compose_raw, env)
    es_env = doc["services"]["elasticsearch"]["environment"]
    assert es_env["ES_JAVA_OPTS"] == "-Xms1g -Xmx1g"
    assert doc["services"]["parser"]["environment"]["NEWSFLOW_LOG_LEVEL"] == "DEBUG"
    sources = {v["target"]: v["source"] for v in doc["services"]["fetcher"]["volumes"]}
    assert sources["/config/feeds.yaml"] == "/srv/feeds.yaml"


def test_interpolation_follows_compose_rules() -> None:
    assert interpolate_str("a${X:-d}b", {}) == "adb"
    assert interpolate_str("${X:-d}", {"X": ""}) == "d"
    assert interpolate_str("${X-d}", {"X": ""}) == ""
    assert interpolate_str("$$X ${X}", {"X": "v"}) == "$X v"
    with pytest.raises(InterpolationError):
        interpolate_str("${X:?set X}", {})


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(Exception, match="duplicate key"):
        load_yaml("services:\n  a:\n    image: x\n    image: y\n")


def test_no_yaml_1_1_booleans_where_compose_wants_strings(compose_raw) -> None:
    # PyYAML reads `no`/`yes` as booleans, Compose's YAML 1.2 parser as strings: quote them.
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    bare = re.findall(r":\s+(yes|no|on|off|Yes|No|On|Off)\s*$", text, flags=re.M)
    assert bare == []
    assert compose_raw["services"]["init"]["restart"] == "no"


# --- project rules --------------------------------------------------------------------------------


def test_core_services_are_all_there_and_in_no_profile(services) -> None:
    for name in CORE:
        assert name in services, name
        assert "profiles" not in services[name], f"{name} must start with a plain `docker compose up`"


def test_every_service_has_a_healthcheck(services) -> None:
    for name, svc in services.items():
        hc = svc.get("healthcheck")
        assert hc, f"{name} has no healthcheck"
        if name in ONE_SHOTS:
            # A one-shot command serves nothing; compose waits for its exit code instead.
            assert hc == {"disable": True}, name
            continue
        assert not hc.get("disable"), name
        test = hc["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (name, test)
        for key in ("interval", "timeout", "start_period"):
            assert parse_duration_s(hc[key]) > 0, (name, key)
        assert int(hc["retries"]) >= 3, name


def test_long_running_services_restart(services) -> None:
    for name, svc in services.items():
        if name in ONE_SHOTS:
            assert svc.get("restart", "no") == "no", name
        else:
            assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name


@pytest.mark.parametrize("name", WORKERS)
def test_worker_waits_for_healthy_servers_and_init(services, name) -> None:
    deps = services[name]["depends_on"]
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps["elasticsearch"]["condition"] == "service_healthy"
    assert deps["init"]["condition"] == "service_completed_successfully"


def test_init_is_the_cli_init_step_after_healthy_servers(services, root: Path) -> None:
    init = services["init"]
    assert init["command"] == ["init"]
    assert init["build"]["dockerfile"] == "docker/newsflow/Dockerfile"
    assert init["build"]["args"] == {"PACKAGE": "newsflow-cli", "COMMAND": "newsflow"}
    assert (root / init["build"]["context"] / init["build"]["dockerfile"]).is_file()
    assert init["depends_on"]["redis"]["condition"] == "service_healthy"
    assert init["depends_on"]["elasticsearch"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_is_scalable(services, name) -> None:
    svc = services[name]
    # A fixed container name or host port would make the second replica fail to start.
    assert "container_name" not in svc
    assert "ports" not in svc
    assert svc.get("deploy", {}).get("replicas", 1) >= 1


@pytest.mark.parametrize("name", WORKERS)
def test_worker_build_and_image(services, root: Path, name) -> None:
    build = services[name]["build"]
    assert build["context"] == "."  # the uv workspace root: uv.lock and shared/ are in the context
    assert build["dockerfile"] == "docker/newsflow/Dockerfile"  # one Dockerfile, the package a build argument
    assert build["args"] == {"PACKAGE": f"newsflow-{name}", "COMMAND": f"newsflow-{name}"}
    assert (root / build["dockerfile"]).is_file()


def _settings_class(name: str) -> type:
    from newsflow_cli.common import CliSettings
    from newsflow_fetcher.settings import FetcherSettings
    from newsflow_indexer.settings import IndexerSettings
    from newsflow_notifier.settings import NotifierSettings
    from newsflow_parser.settings import ParserSettings

    return {
        "fetcher": FetcherSettings,
        "parser": ParserSettings,
        "indexer": IndexerSettings,
        "notifier": NotifierSettings,
        "init": CliSettings,
    }[name]


# What each container needs beyond Redis: its own settings and nothing else.
OWN_ENV = {
    "fetcher": {"NEWSFLOW_FEEDS_FILE": "/config/feeds.yaml"},
    "parser": {},
    "indexer": {"NEWSFLOW_ELASTICSEARCH_URL": "http://elasticsearch:9200", "NEWSFLOW_RULES_FILE": "/config/rules.yaml"},
    "notifier": {
        "NEWSFLOW_ELASTICSEARCH_URL": "http://elasticsearch:9200",
        "NEWSFLOW_ALLOWED_NETWORKS": "",
        "NEWSFLOW_SMTP_HOST": "",
        "NEWSFLOW_SMTP_PORT": "587",
        "NEWSFLOW_SMTP_SECURITY": "starttls",
        "NEWSFLOW_SMTP_USERNAME": "",
        "NEWSFLOW_SMTP_PASSWORD": "",
        "NEWSFLOW_SMTP_FROM": "Newsflow <newsflow@localhost>",
    },
    "init": {"NEWSFLOW_ELASTICSEARCH_URL": "http://elasticsearch:9200"},
}
ALL_OWN = {k for env in OWN_ENV.values() for k in env}


@pytest.mark.parametrize("name", (*WORKERS, "init"))
def test_configuration_comes_from_the_environment(services, root: Path, name) -> None:
    env = services[name]["environment"]
    assert env["NEWSFLOW_REDIS_URL"] == "redis://redis:6379/0"
    assert env["NEWSFLOW_LOG_LEVEL"] == "INFO"
    own = {k: v for k, v in env.items() if k in ALL_OWN}
    assert own == OWN_ENV[name], "each service is given only the settings it reads"
    # The values must be accepted by the settings the service actually loads, and every one must be read.
    cls = _settings_class(name)
    fields = {k.removeprefix("NEWSFLOW_").lower(): v for k, v in env.items()}
    assert set(fields) <= set(cls.model_fields), set(fields) - set(cls.model_fields)
    settings = cls(**fields)
    assert settings.metrics_port == 8000 and settings.metrics_host == "0.0.0.0"
    mounts = {v["target"]: v for v in services[name].get("volumes", [])}
    for target in (v for k, v in own.items() if k.endswith("_FILE")):
        assert mounts[target]["read_only"] is True
        # The defaults are the repository's own files, so `up` works on a fresh clone.
        assert (root / mounts[target]["source"]).is_file(), mounts[target]["source"]
        # A missing file must stop `up`, not become an empty directory on the host.
        assert mounts[target]["bind"]["create_host_path"] is False


@pytest.mark.parametrize("name", WORKERS)
def test_worker_healthcheck_probes_its_own_health_port(services, name) -> None:
    svc = services[name]
    port = svc["environment"]["NEWSFLOW_METRICS_PORT"]
    assert port == "8000"
    test = svc["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]  # slim images have no curl
    assert f"http://127.0.0.1:{port}/health" in test[3]
    assert "urllib" in test[3]
    assert port in [str(p) for p in svc["expose"]]
    compile(test[3], "<healthcheck>", "exec")


def test_worker_healthcheck_is_healthy_on_200_only(services, health_server) -> None:
    # Run the compose file's probe itself, against a local /health answering 200 and then 503.
    code = services["parser"]["healthcheck"]["test"][3]
    code = code.replace(":8000/", f":{health_server.port}/")
    results = {}
    for status in (200, 503):
        health_server.status = status
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        results[status] = proc.returncode
    assert results[200] == 0
    assert results[503] != 0


@pytest.mark.parametrize("name", WORKERS)
def test_stop_grace_outlasts_the_graceful_timeout(services, name) -> None:
    svc = services[name]
    configured = float(svc["environment"]["NEWSFLOW_GRACEFUL_TIMEOUT_S"])
    default = _settings_class(name).model_fields["graceful_timeout_s"].default
    grace = parse_duration_s(svc["stop_grace_period"])
    assert grace > configured and grace > default
    assert svc.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_elasticsearch_is_the_tested_version(services, es_version: str, root: Path) -> None:
    es = services["elasticsearch"]
    assert es["build"]["args"]["ES_VERSION"] == es_version
    assert es["image"].endswith(f":{es_version}")
    dockerfile = root / es["build"]["context"] / es["build"].get("dockerfile", "Dockerfile")
    text = dockerfile.read_text(encoding="utf-8")
    assert f"ARG ES_VERSION={es_version}\n" in text
    assert "FROM docker.elastic.co/elasticsearch/elasticsearch:${ES_VERSION}" in text
    assert services["kibana"]["image"] == f"docker.elastic.co/kibana/kibana:{es_version}"


def test_elasticsearch_single_node_bounded_and_private(services) -> None:
    es = services["elasticsearch"]
    env = es["environment"]
    assert env["discovery.type"] == "single-node"
    heap = re.fullmatch(r"-Xms(\d+)([mg]) -Xmx(\d+)([mg])", env["ES_JAVA_OPTS"])
    assert heap, env["ES_JAVA_OPTS"]
    assert heap.group(1, 2) == heap.group(3, 4), "Xms and Xmx must match"
    mb = int(heap.group(3)) * (1024 if heap.group(4) == "g" else 1)
    assert 256 <= mb <= 1024
    # Security is off, so the node must not be published beyond the host's loopback.
    assert env["xpack.security.enabled"] == "false"
    for port in es.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port
    assert any(str(v).endswith(":/usr/share/elasticsearch/data") for v in es["volumes"])
    test = " ".join(es["healthcheck"]["test"])
    assert "curl" in test and "/_cluster/health" in test and "wait_for_status=yellow" in test


def test_redis_is_durable_and_never_evicts(services) -> None:
    redis = services["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-[a-z0-9.]+)?", redis["image"]), redis["image"]
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    opts = dict(zip(cmd[1::2], cmd[2::2], strict=True))
    assert opts["--appendonly"] == "yes"
    assert opts["--appendfsync"] == "everysec"
    assert opts["--maxmemory-policy"] == "noeviction"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_host_ports_bind_loopback_only(services) -> None:
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_optional_services_are_behind_their_profiles(services) -> None:
    assert services["kibana"]["profiles"] == ["kibana"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert services["kibana"]["environment"]["ELASTICSEARCH_HOSTS"] == '["http://elasticsearch:9200"]'


def test_named_volumes_are_declared_and_bind_sources_exist(compose, root: Path) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            if isinstance(vol, dict):
                source, kind = vol["source"], vol["type"]
            else:
                source = vol.split(":", 1)[0]
                kind = "bind" if source.startswith((".", "/")) else "volume"
            if kind == "volume":
                assert source in declared, (name, source)
            elif name in ("prometheus", "grafana"):
                # Monitoring config ships with the repository; feeds/rules are the operator's.
                assert (root / source).exists(), (name, source)


def test_depends_on_names_real_services(services) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, (name, dep)
            assert dep != name


def test_deploy_doc_override_examples_are_valid_compose(validator, root: Path) -> None:
    # docs/DEPLOY.md shows overrides (e.g. turning security on); an operator copies them as they are.
    text = (root / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    env = {"ELASTIC_PASSWORD": "x", "NEWSFLOW_ELASTICSEARCH_API_KEY": "x"}
    for block in blocks:
        doc = interpolate(load_yaml(block), env)
        assert set(doc) == {"services"}
        assert set(doc["services"]) <= set(load_yaml(COMPOSE_FILE.read_text())["services"])
        assert _errors(validator, doc) == []
