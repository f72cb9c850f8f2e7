"""The compose `monitoring` profile: Prometheus scrapes every service, the Grafana dashboard is sound.

The dashboard's metric and label names are checked against what the services really register on the
default Prometheus registry (the one /metrics serves), so a renamed metric fails here, not on a
blank panel in production.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_loading import WORKERS
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

pytestmark = pytest.mark.unit

# Every module that defines metrics the dashboard may use (each registers on the default registry).
METRIC_MODULES = (
    "newsflow_shared.metrics",
    "newsflow_fetcher.metrics",
    "newsflow_parser.metrics",
    "newsflow_indexer.metrics",
    "newsflow_notifier.metrics",
)
# Series Prometheus adds itself, and the labels it attaches to every scraped series.
PROMETHEUS_SERIES = {"up": set()}
TARGET_LABELS = {"job", "instance"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "histogram_quantile", "by", "without",
    "on", "ignoring", "and", "or", "unless", "bool", "offset", "le",
}  # fmt: skip
DASHBOARD = "monitoring/grafana/dashboards/newsflow.json"


def _series_of(metric: MetricWrapperBase) -> dict[str, set[str]]:
    # prometheus_client keeps the type and label names on private attributes; there is no public accessor.
    name, kind, labels = metric._name, metric._type, set(metric._labelnames)
    if kind == "counter":
        return {f"{name}_total": labels}
    if kind == "histogram":
        return {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels}
    if kind == "summary":
        return {f"{name}_sum": labels, f"{name}_count": labels, name: labels | {"quantile"}}
    return {name: labels}


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Series name -> label names, for everything the services can put on /metrics."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    series: dict[str, set[str]] = dict(PROMETHEUS_SERIES)
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase) and collector._name.startswith("newsflow_"):
            series.update(_series_of(collector))
    # FastStream's middleware, as the runtime installs it (its metrics are created with it).
    from faststream.redis.prometheus import RedisPrometheusMiddleware

    scratch = CollectorRegistry()
    RedisPrometheusMiddleware(registry=scratch, app_name="probe")
    for collector in list(scratch._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            series.update(_series_of(collector))
    return series


@pytest.fixture(scope="module")
def dashboard(root: Path) -> dict[str, Any]:
    return json.loads((root / DASHBOARD).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prometheus_config(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "monitoring" / "prometheus.yml").read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def _metric_names(expr: str) -> set[str]:
    # Drop what is not a series name: label matchers, ranges, grouping clauses, function calls.
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    rest = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rest)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", rest))
    return {n for n in names if n not in PROMQL_WORDS}


# --- Prometheus -----------------------------------------------------------------------------------


def test_prometheus_scrapes_every_replica_of_every_service(prometheus_config, services) -> None:
    jobs = {j["job_name"]: j for j in prometheus_config["scrape_configs"]}
    for name in WORKERS:
        job = jobs[name]
        # Docker's DNS answers a service name with one A record per replica: --scale needs no edit here.
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == [name] and sd["type"] == "A"
        assert str(sd["port"]) == services[name]["environment"]["NEWSFLOW_METRICS_PORT"]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert "static_configs" not in job, "a static target would miss replicas"


def test_prometheus_service_uses_this_config(services, root: Path) -> None:
    prom = services["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prom["volumes"] if v.startswith("./"))
    assert mounts["./monitoring/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    for dep in WORKERS:
        assert dep in prom["depends_on"]


# --- Grafana --------------------------------------------------------------------------------------


def test_grafana_provisions_the_datasource_and_the_dashboard(services, root: Path, dashboard) -> None:
    grafana = services["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    prov = root / "monitoring" / "grafana" / "provisioning"
    (ds,) = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((prov / "dashboards" / "newsflow.yml").read_text())["providers"]
    dash_dir = provider["options"]["path"]
    assert mounts["./monitoring/grafana/dashboards"] == dash_dir
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_dir + "/")
    assert (root / "monitoring/grafana/dashboards" / Path(home).name).is_file()
    # Every panel and query points at the provisioned datasource.
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": ds["uid"]}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == ds["uid"], panel["title"]


def test_dashboard_layout_is_valid(dashboard) -> None:
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]
        for t in p.get("targets", []):
            assert t["refId"] and t["expr"].strip(), p["title"]


def test_dashboard_uses_only_metrics_the_services_export(dashboard, exported) -> None:
    unknown = {name for expr in _exprs(dashboard) for name in _metric_names(expr)} - exported.keys()
    assert unknown == set()


def test_dashboard_groups_and_filters_by_labels_the_metrics_have(dashboard, exported) -> None:
    for expr in _exprs(dashboard):
        names = _metric_names(expr)
        labels = set().union(*(exported[n] for n in names)) | TARGET_LABELS
        grouped = {lbl.strip() for g in re.findall(r"\bby\s*\(([^)]*)\)", expr) for lbl in g.split(",")}
        matched = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", expr))
        assert grouped | matched <= labels, (expr, (grouped | matched) - labels)


def test_dashboard_queries_are_well_formed(dashboard) -> None:
    for expr in _exprs(dashboard):
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack: list[str] = []
        for ch in re.sub(r'"[^"]*"', '""', expr):
            if ch in pairs:
                stack.append(pairs[ch])
            elif ch in pairs.values():
                assert stack and stack.pop() == ch, expr
        assert not stack, expr
        # A counter is read through rate()/increase() over a range, never raw.
        for fn in re.findall(r"\b(rate|increase)\(\s*([^()]*)\)", expr):
            assert re.search(r"\[[^\]]+\]\s*$", fn[1]), expr
        if "histogram_quantile" in expr:
            assert "_bucket" in expr and re.search(r"\bby\s*\([^)]*\ble\b", expr), expr


def test_dashboard_shows_throughput_lag_errors_and_latency(dashboard) -> None:
    used = {name for expr in _exprs(dashboard) for name in _metric_names(expr)}
    assert "newsflow_messages_total" in used  # throughput per stage and stream
    assert "newsflow_stream_lag" in used and "newsflow_stream_pending" in used  # lag per stream
    assert "newsflow_dead_letters_total" in used  # errors
    assert any(n.endswith("_bucket") for n in used)  # latency histograms
    assert "newsflow_searchable_latency_seconds_bucket" in used  # publication to searchable
    for svc in WORKERS:  # each service's own figures, not only the shared runtime's
        assert any(n.startswith(f"newsflow_{svc}_") for n in used), svc
    titles = " ".join(p["title"].lower() for p in _panels(dashboard))
    for word in ("throughput", "lag", "errors", "latency"):
        assert word in titles, word
    # The notifier: deliveries by channel and outcome, and the latency from indexed to delivered.
    assert "newsflow_notifier_deliveries_total" in used and "newsflow_notifier_latency_seconds_bucket" in used


def test_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, kind) (rate(newsflow_x_bucket{kind="feed"}[5m]))) / max(up)'
    assert _metric_names(expr) == {"newsflow_x_bucket", "up"}
