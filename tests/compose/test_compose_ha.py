"""docker-compose.ha.yml: valid for `docker compose` and `docker stack deploy`, and a topology that survives
the loss of any one machine. Nothing here runs Docker; docker/redis/newsflow-redis.sh is run in dry-run mode."""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from compose_loading import COMPOSE_FILE, ROOT, interpolate, load_yaml, parse_duration_s
from swarm_format import stack_format_errors

from newsflow_shared.settings import CommonSettings

pytestmark = pytest.mark.unit

HA_FILE = ROOT / "docker-compose.ha.yml"
REDIS_SCRIPT = ROOT / "docker" / "redis" / "newsflow-redis.sh"
ES_NODES = ("es1", "es2", "es3")
REDIS_SERVERS = ("redis-1", "redis-2")
SENTINELS = ("redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3")
# Every long-running Newsflow service: the notifier and the web app must follow a failover like the pipeline.
WORKERS = ("fetcher", "parser", "indexer", "notifier", "web")
# The variables the services read to reach Sentinel, every Elasticsearch node, and the replica count.
HA_VARIABLES = (
    "NEWSFLOW_REDIS_SENTINELS",
    "NEWSFLOW_REDIS_SENTINEL_MASTER",
    "NEWSFLOW_ELASTICSEARCH_URL",
    "NEWSFLOW_INDEX_REPLICAS",
)


@pytest.fixture(scope="module")
def ha_raw() -> dict[str, Any]:
    return load_yaml(HA_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ha(ha_raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(ha_raw, {})


@pytest.fixture(scope="module")
def svc(ha: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return ha["services"]


@pytest.fixture(scope="module")
def spec_validator() -> jsonschema.protocols.Validator:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _slot(service: dict[str, Any]) -> str:
    (constraint,) = service["deploy"]["placement"]["constraints"]
    m = re.fullmatch(r"node\.labels\.newsflow\.slot == (\d+)", constraint)
    assert m, constraint
    return m.group(1)


# --- both formats -----------------------------------------------------------------------------------


def test_matches_the_compose_specification(spec_validator, ha) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in spec_validator.iter_errors(ha)]
    assert errors == []


def test_keeps_to_what_docker_stack_deploy_reads(ha) -> None:
    assert stack_format_errors(ha) == []


def test_the_stack_check_refuses_what_swarm_would(ha) -> None:
    # The single-machine file uses what only Compose knows: the check must say so, or it proves nothing.
    main = interpolate(load_yaml(COMPOSE_FILE.read_text(encoding="utf-8")), {})
    errors = stack_format_errors(main)
    for expected in (
        "top level: 'name'",
        "services/parser/depends_on: must be a plain list",
        "services/kibana: 'profiles' is not in the stack format",
        "services/redis: Swarm ignores 'restart'",
        "services/init: Swarm ignores 'build'",
        "services/fetcher/volumes/bind: 'create_host_path'",
    ):
        assert any(e.startswith(expected) for e in errors), (expected, errors)
    broken = copy.deepcopy(ha)
    broken["services"]["es1"]["deploy"]["replicas"] = "1"
    broken["services"]["es1"]["healthcheck"]["intervall"] = "5s"
    errors = stack_format_errors(broken)
    assert any("es1/deploy/replicas" in e for e in errors) and any("intervall" in e for e in errors), errors


def test_runs_with_no_variables_set(ha_raw) -> None:
    assert "${" not in json.dumps(interpolate(ha_raw, {}))


def test_no_yaml_1_1_booleans() -> None:
    text = HA_FILE.read_text(encoding="utf-8")
    assert re.findall(r":\s+(yes|no|on|off|Yes|No|On|Off)\s*$", text, flags=re.M) == []


def test_every_image_is_one_the_project_builds_or_pins(svc, es_version: str) -> None:
    built = {s["image"] for s in load_yaml(COMPOSE_FILE.read_text())["services"].values() if "build" in s}
    for name, s in svc.items():
        image = s["image"]
        if image.startswith("newsflow/"):
            # Built by `docker compose build` from docker-compose.yml, then pushed where every node pulls.
            assert image in built, (name, image)
        else:
            assert image == "redis:7", (name, image)
    assert {svc[n]["image"] for n in ES_NODES} == {f"newsflow/elasticsearch:{es_version}"}


def test_registry_prefix_applies_to_every_project_image(ha_raw) -> None:
    doc = interpolate(ha_raw, {"NEWSFLOW_REGISTRY": "registry.example.com:5000/"})
    for name, s in doc["services"].items():
        if "newsflow/" in s["image"]:
            assert s["image"].startswith("registry.example.com:5000/newsflow/"), name


def test_nothing_is_published_on_a_host_port(svc) -> None:
    # Security is off; the stack is reachable only on its own network.
    for name, s in svc.items():
        assert "ports" not in s, name
        assert s.get("environment", {}).get("xpack.security.enabled", "false") == "false"


def test_every_service_restarts_and_has_a_healthcheck(svc) -> None:
    for name, s in svc.items():
        policy = s["deploy"]["restart_policy"]
        if name == "init":
            assert policy["condition"] == "on-failure" and s["healthcheck"] == {"disable": True}
            continue
        assert policy["condition"] == "any", name
        hc = s["healthcheck"]
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and int(hc["retries"]) >= 3, name
        for key in ("interval", "timeout", "start_period"):
            assert parse_duration_s(hc[key]) > 0, (name, key)


def test_named_volumes_are_declared_and_each_stateful_service_has_its_own(ha, svc) -> None:
    declared = set(ha["volumes"])
    seen: list[str] = []
    for name in (*ES_NODES, *REDIS_SERVERS, *SENTINELS):
        (mount,) = svc[name]["volumes"]
        source = mount.split(":", 1)[0]
        assert source in declared, (name, source)
        seen.append(source)
    assert len(seen) == len(set(seen))


def test_config_files_exist_and_are_versioned(ha, ha_raw) -> None:
    for name, cfg in ha["configs"].items():
        assert (ROOT / cfg["file"]).is_file(), (name, cfg["file"])
    # Swarm refuses a changed config under the same name: raising the version deploys it anew.
    bumped = interpolate(ha_raw, {"NEWSFLOW_CONFIG_VERSION": "2"})["configs"]
    for name, cfg in ha["configs"].items():
        assert cfg["name"].endswith("-1") and bumped[name]["name"] == cfg["name"][:-1] + "2", name


# --- surviving one machine --------------------------------------------------------------------------


def test_stateful_services_are_spread_over_three_slots(svc) -> None:
    assert sorted(_slot(svc[n]) for n in ES_NODES) == ["1", "2", "3"]
    assert sorted(_slot(svc[n]) for n in SENTINELS) == ["1", "2", "3"]
    assert len({_slot(svc[n]) for n in REDIS_SERVERS}) == 2
    # Losing any one slot leaves a majority of masters and of Sentinels, and a Redis server.
    for lost in "123":
        assert sum(_slot(svc[n]) != lost for n in ES_NODES) >= 2
        assert sum(_slot(svc[n]) != lost for n in SENTINELS) >= 2
        assert any(_slot(svc[n]) != lost for n in REDIS_SERVERS)


def test_elasticsearch_nodes_form_one_cluster(svc, ha_raw) -> None:
    for name in ES_NODES:
        env = svc[name]["environment"]
        assert env["node.name"] == name and env["network.publish_host"] == name
        assert env["cluster.name"] == "newsflow"
        assert env["discovery.seed_hosts"].split(",") == list(ES_NODES)
        assert env["cluster.initial_master_nodes"].split(",") == list(ES_NODES)
        assert "discovery.type" not in env
        assert env["indices.analysis.hunspell.dictionary.ignore_case"] == "true"
        assert svc[name]["deploy"]["endpoint_mode"] == "dnsrr"
        assert svc[name]["ulimits"]["nofile"] == {"soft": 65535, "hard": 65535}
        test = " ".join(svc[name]["healthcheck"]["test"])
        assert "/_cluster/health" in test and "wait_for_status=yellow" in test
    # After the first start the operator clears it (the official image skips empty settings).
    cleared = interpolate(ha_raw, {"NEWSFLOW_ES_INITIAL_MASTER_NODES": ""})
    assert all(cleared["services"][n]["environment"]["cluster.initial_master_nodes"] == "" for n in ES_NODES)


def test_elasticsearch_heap_fits_its_memory_limit(svc, ha_raw) -> None:
    for env in ({}, {"NEWSFLOW_ES_HEAP": "1g", "NEWSFLOW_ES_MEMORY": "2g"}):
        doc = interpolate(ha_raw, env)
        for name in ES_NODES:
            s = doc["services"][name]
            heap = re.fullmatch(r"-Xms(\d+)([mg]) -Xmx(\d+)([mg])", s["environment"]["ES_JAVA_OPTS"])
            assert heap and heap.group(1, 2) == heap.group(3, 4)
            heap_mb = int(heap.group(3)) * (1024 if heap.group(4) == "g" else 1)
            limit = re.fullmatch(r"(\d+)([mg])", s["deploy"]["resources"]["limits"]["memory"])
            assert limit
            limit_mb = int(limit.group(1)) * (1024 if limit.group(2) == "g" else 1)
            # Elastic: the heap at most half of the memory, the rest for Lucene's file cache.
            assert 2 * heap_mb <= limit_mb, (name, heap_mb, limit_mb)


def _sentinel_list(value: str) -> list[tuple[str, int]]:
    pairs = [hp.rsplit(":", 1) for hp in value.split(",")]
    return [(h, int(p)) for h, p in pairs]


def test_redis_members_run_the_start_script_in_their_role(svc, ha) -> None:
    assert ha["configs"]["newsflow-redis"]["file"] == "./docker/redis/newsflow-redis.sh"
    for names, role in ((REDIS_SERVERS, "server"), (SENTINELS, "sentinel")):
        for name in names:
            s = svc[name]
            assert s["image"] == "redis:7"
            (cfg,) = s["configs"]
            assert (cfg["source"], cfg["target"]) == ("newsflow-redis", "/usr/local/bin/newsflow-redis.sh")
            assert s["command"] == ["sh", cfg["target"], role]
            env = s["environment"]
            assert env["NEWSFLOW_REDIS_SELF"] == name
            assert _sentinel_list(env["NEWSFLOW_REDIS_SENTINELS"]) == [(n, 26379) for n in SENTINELS]
            assert env["NEWSFLOW_REDIS_SENTINEL_MASTER"] == "newsflow"
            assert env["NEWSFLOW_REDIS_INITIAL_PRIMARY"] == "redis-1"
            assert s["deploy"]["endpoint_mode"] == "dnsrr"
            probe = " ".join(s["healthcheck"]["test"])
            assert "redis-cli" in probe and "ping" in probe
            # A Sentinel that lost its peers must keep running: its probe is not about the quorum.
            assert ("-p 26379" in probe) == (role == "sentinel")


@pytest.mark.parametrize("name", (*WORKERS, "init"))
def test_services_reach_sentinel_and_every_node(svc, name) -> None:
    env = svc[name]["environment"]
    assert _sentinel_list(env["NEWSFLOW_REDIS_SENTINELS"]) == [(n, 26379) for n in SENTINELS]
    assert env["NEWSFLOW_REDIS_SENTINEL_MASTER"] == svc["redis-1"]["environment"]["NEWSFLOW_REDIS_SENTINEL_MASTER"]
    assert env["NEWSFLOW_ELASTICSEARCH_URL"].split(",") == [f"http://{n}:9200" for n in ES_NODES]
    # One replica of every shard: a node's loss loses nothing, and three nodes can place them all.
    assert int(env["NEWSFLOW_INDEX_REPLICAS"]) == 1 <= len(ES_NODES) - 1
    # A fixed Redis URL would bypass the failover.
    assert "NEWSFLOW_REDIS_URL" not in env
    assert set(HA_VARIABLES) <= set(env)
    # The settings must accept every value they know; a variable they do not know yet is checked here
    # by the assertions above, and by the settings themselves as soon as they declare it.
    fields = {k.removeprefix("NEWSFLOW_").lower(): v for k, v in env.items()}
    CommonSettings(**{k: v for k, v in fields.items() if k in CommonSettings.model_fields})


def test_every_long_running_service_of_the_single_machine_file_is_here(svc) -> None:
    main = load_yaml(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    # Built by the project and started by `up` (no profile): the services that must keep going (init is a one-shot;
    # the Elasticsearch image is the cluster nodes here).
    running = {n for n, s in main.items() if "build" in s and "profiles" not in s} - {"init", "elasticsearch"}
    assert running == set(WORKERS), running
    assert running <= set(svc)


def test_web_is_healthchecked_on_its_own_port_and_not_published(svc) -> None:
    web = svc["web"]
    assert web["environment"]["NEWSFLOW_WEB_HOST"] == "0.0.0.0"
    port = web["environment"]["NEWSFLOW_WEB_PORT"]
    assert web["expose"] == [port]
    assert f"127.0.0.1:{port}/health" in " ".join(web["healthcheck"]["test"])
    assert "ports" not in web


@pytest.mark.parametrize("name", WORKERS)
def test_workers_are_replicated_and_spread(svc, name) -> None:
    s = svc[name]
    assert s["deploy"]["replicas"] >= 2
    assert s["deploy"]["placement"]["preferences"] == [{"spread": "node.labels.newsflow.slot"}]
    assert parse_duration_s(s["stop_grace_period"]) > float(s["environment"]["NEWSFLOW_GRACEFUL_TIMEOUT_S"])
    if name != "web":  # the web app reads feeds and rules from Redis and Elasticsearch, never from the files
        assert {c["target"] for c in s["configs"]} == {"/config/feeds.yaml", "/config/rules.yaml"}


# --- docker/redis/newsflow-redis.sh, dry run -----------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: a Sentinel that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _script(role: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "NEWSFLOW_REDIS_DRY_RUN": "1", "NEWSFLOW_REDIS_SENTINEL_WAIT_S": "0"}
    return subprocess.run(
        ["sh", str(REDIS_SCRIPT), role, *args], env={**base, **env}, capture_output=True, text=True, timeout=30
    )


def test_script_is_posix_sh() -> None:
    assert subprocess.run(["sh", "-n", str(REDIS_SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("self_name", "role"), [("redis-1", "--replicaof no one"), ("redis-2", "--replicaof redis-1 6379")]
)
def test_first_start_without_sentinels_takes_the_initial_layout(closed_port: int, self_name: str, role: str) -> None:
    env = {"NEWSFLOW_REDIS_SELF": self_name, "NEWSFLOW_REDIS_SENTINELS": f"127.0.0.1:{closed_port}"}
    out = _script("server", env)
    assert out.returncode == 0, out.stderr
    cmd = out.stdout.strip()
    assert cmd.startswith("redis-server --port 6379 --dir /data ")
    assert cmd.endswith(role)
    # The same durability as the single server of docker-compose.yml.
    for opt in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction", "--maxmemory 1gb"):
        assert opt in cmd
    assert f"--replica-announce-ip {self_name} --replica-announce-port 6379" in cmd
    assert "no Sentinel answered" in out.stderr


def test_extra_arguments_reach_redis_server(closed_port: int) -> None:
    env = {"NEWSFLOW_REDIS_SELF": "redis-1", "NEWSFLOW_REDIS_SENTINELS": f"127.0.0.1:{closed_port}"}
    out = _script("server", env, "--requirepass", "s3cret")
    assert "--requirepass s3cret --replicaof no one" in out.stdout


def test_first_sentinel_config(tmp_path: Path, closed_port: int) -> None:
    env = {
        "NEWSFLOW_REDIS_SELF": "redis-sentinel-2",
        "NEWSFLOW_REDIS_SENTINELS": f"127.0.0.1:{closed_port}",
        "NEWSFLOW_REDIS_DATA": str(tmp_path),
    }
    out = _script("sentinel", env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"redis-server {tmp_path}/sentinel.conf --sentinel"
    conf = (tmp_path / "sentinel.conf").read_text().splitlines()
    assert conf.index("sentinel resolve-hostnames yes") < conf.index("sentinel monitor newsflow redis-1 6379 2")
    for line in (
        "port 26379",
        "sentinel announce-hostnames yes",
        "sentinel announce-ip redis-sentinel-2",
        "sentinel down-after-milliseconds newsflow 5000",
        "sentinel failover-timeout newsflow 30000",
        "sentinel parallel-syncs newsflow 1",
    ):
        assert line in conf, line
    # Written once: a Sentinel's own rewrites (the current primary, epochs) survive its restarts.
    (tmp_path / "sentinel.conf").write_text("port 26379\nsentinel monitor newsflow redis-2 6379 2\n")
    assert _script("sentinel", env).returncode == 0
    assert "redis-2" in (tmp_path / "sentinel.conf").read_text()


def test_missing_identity_is_refused(closed_port: int) -> None:
    out = _script("server", {"NEWSFLOW_REDIS_SENTINELS": f"127.0.0.1:{closed_port}"})
    assert out.returncode != 0 and "NEWSFLOW_REDIS_SELF" in out.stderr
    assert _script("primary", {"NEWSFLOW_REDIS_SELF": "x", "NEWSFLOW_REDIS_SENTINELS": "x:1"}).returncode == 2
