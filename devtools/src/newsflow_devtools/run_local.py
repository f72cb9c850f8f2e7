"""`make run`: the whole of Newsflow on this machine, no Docker.

Starts Redis and Elasticsearch (state under .state/, kept between runs), runs `newsflow init`, then the
fetcher, parser and indexer as separate processes and the web page (port 8080, or a free one; logs in
.state/logs/). Without NEWSFLOW_FEEDS_FILE it
also serves the bundled demo articles from a feed server on loopback and registers its feeds; the demo
rule "rocket attack" comes from rules.yaml. It shows progress, says where to search, and runs until
Ctrl-C, which stops the services (SIGTERM), then Elasticsearch and Redis.

    .venv/bin/python -m newsflow_devtools.run_local                 # interactive, until Ctrl-C
    .venv/bin/python -m newsflow_devtools.run_local --until-done    # exit once every demo article is indexed and
                                                          # the demo alert fired (for tests and CI)

With NEWSFLOW_REDIS_URL / NEWSFLOW_ELASTICSEARCH_URL set, those servers are used and none is started.
A second run re-uses the servers' data and the demo server's port (so the same article URLs): nothing
is fetched or indexed twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsflow_devtools import repo_root

ROOT = repo_root()
VENV_BIN = Path(sys.executable).parent
DEMO_RULE = "rocket attack"
# The demo's tuning: poll every few seconds, no politeness delay towards our own loopback server.
DEMO_ENV = {
    "NEWSFLOW_MIN_POLL_INTERVAL_S": "2",
    "NEWSFLOW_MAX_POLL_INTERVAL_S": "30",
    "NEWSFLOW_PER_HOST_DELAY_S": "0",
    "NEWSFLOW_PER_HOST_CONCURRENCY": "8",
    "NEWSFLOW_BATCH_LINGER_S": "0.5",
    "NEWSFLOW_RULES_REFRESH_S": "1",
    "NEWSFLOW_CLAIM_IDLE_MS": "15000",
}
DEMO_FEED_INTERVAL_S = 2.0
WEB_DEFAULT_PORT = 8080


class RunError(Exception):
    """Something the operator can fix, said in one line."""


def say(msg: str) -> None:
    # The terminal or a pipe (`make run | tee`) may be gone by the time we stop: stopping must go on.
    try:
        print(msg, flush=True)
    except (BrokenPipeError, OSError):
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the dead stream for good


def first_error(e: Exception) -> str:
    """One line from a pydantic ValidationError, a YAML error or anything else."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):
            err = errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ()))
            return f"{err.get('msg')}" + (f" (at {loc})" if loc else "")
    text = " ".join(str(e).split())
    return text[:300] or type(e).__name__


# --- configuration -------------------------------------------------------------------------------


@dataclass
class Config:
    state: Path
    until_done: bool
    timeout_s: float
    articles: int
    seed: int
    rules_file: Path
    feeds_file: Path | None
    redis_url: str | None  # given by the operator: use it, start nothing
    es_url: str | None
    feeds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def demo(self) -> bool:
        return self.feeds_file is None


def load_config(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="make run", description="Run Newsflow locally (see the module docstring).")
    p.add_argument(
        "--until-done",
        "--headless",
        dest="until_done",
        action="store_true",
        help="exit once every demo article is indexed and the demo alert fired",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="--until-done gives up after this many seconds")
    p.add_argument(
        "--articles",
        type=int,
        default=None,
        help="demo articles to serve (default 30, the hand-written ones; more are generated)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of generated demo articles")
    p.add_argument("--state", type=Path, default=ROOT / ".state", help="state directory (default .state)")
    a = p.parse_args(argv)

    from newsflow_cli.common import CliSettings
    from newsflow_devtools.demo.corpus import bundled_count

    try:
        settings = CliSettings()
    except Exception as e:
        raise RunError(f"bad configuration in the environment: {first_error(e)}") from None
    env = os.environ
    rules_file = Path(env.get("NEWSFLOW_RULES_FILE") or ROOT / "rules.yaml").resolve()
    feeds_file = Path(env["NEWSFLOW_FEEDS_FILE"]).resolve() if env.get("NEWSFLOW_FEEDS_FILE") else None
    cfg = Config(
        state=a.state.resolve(),
        until_done=a.until_done,
        timeout_s=a.timeout,
        articles=a.articles or bundled_count(),
        seed=a.seed,
        rules_file=rules_file,
        feeds_file=feeds_file,
        redis_url=settings.redis_url if env.get("NEWSFLOW_REDIS_URL") else None,
        es_url=settings.elasticsearch_url if env.get("NEWSFLOW_ELASTICSEARCH_URL") else None,
    )
    if cfg.articles < 1:
        raise RunError("--articles must be at least 1")
    if cfg.until_done and not cfg.demo:
        raise RunError("--until-done waits for the demo articles; it cannot be used with NEWSFLOW_FEEDS_FILE")
    check_files(cfg)
    return cfg


def check_files(cfg: Config) -> None:
    from newsflow_search.rules import load_rules_file

    if not cfg.rules_file.is_file():
        raise RunError(f"rules file {cfg.rules_file} not found (set NEWSFLOW_RULES_FILE or restore rules.yaml)")
    try:
        rules = load_rules_file(cfg.rules_file)
    except Exception as e:
        raise RunError(f"bad rules file {cfg.rules_file}: {first_error(e)}") from None
    if cfg.demo and DEMO_RULE not in {r.name for r in rules}:
        say(f"note: {cfg.rules_file} has no rule named {DEMO_RULE!r}; the demo alert will not fire")
    if cfg.feeds_file is not None:
        from newsflow_feeds.registry import load_feeds_file

        if not cfg.feeds_file.is_file():
            raise RunError(f"feeds file {cfg.feeds_file} not found (NEWSFLOW_FEEDS_FILE)")
        try:
            cfg.feeds = load_feeds_file(cfg.feeds_file)
        except Exception as e:
            raise RunError(f"bad feeds file {cfg.feeds_file}: {first_error(e)}") from None
        if not cfg.feeds:
            raise RunError(f"feeds file {cfg.feeds_file} lists no feeds")
        for f in cfg.feeds:
            if not str(f["url"]).startswith(("http://", "https://")):
                raise RunError(f"bad feeds file {cfg.feeds_file}: {f['url']!r} is not an http(s) URL")


# --- the servers ---------------------------------------------------------------------------------


def run_script(args: list[str], what: str, timeout: float = 900) -> str:
    """Run scripts/redis.sh or scripts/elasticsearch.sh; its last stdout line is the server's URL."""
    try:
        # A session of its own: the server it leaves behind must not get the terminal's Ctrl-C before
        # the services have drained.
        out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise RunError(f"{what} did not start within {timeout:.0f} s") from None
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
        reason = next(
            (ln for ln in reversed(lines) if ln.startswith(("redis.sh:", "elasticsearch.sh:"))),
            lines[-1] if lines else f"exit code {out.returncode}",
        )
        raise RunError(f"{what} did not start: {reason}")
    return out.stdout.strip().splitlines()[-1]


REDIS_DEFAULT_PORT = 6379
ES_DEFAULT_PORT = 9200


def port_or_free(preferred: int) -> int:
    """The server's usual port when it is free, so that `newsflow ...` finds it with no settings."""
    import socket

    from newsflow_devtools.processes import free_port

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


class Servers:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.redis_url = cfg.redis_url
        self.es_url = cfg.es_url
        self.started: list[str] = []

    def start(self) -> None:
        if self.redis_url is None:
            if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
                raise RunError("redis-server is not installed: run `make setup` (or apt-get install redis-server)")
            say("starting Redis ...")
            self.redis_url = run_script(
                [
                    "scripts/redis.sh",
                    "start",
                    "--dir",
                    str(self.cfg.state / "redis"),
                    "--port",
                    str(port_or_free(REDIS_DEFAULT_PORT)),
                ],
                "Redis",
                60,
            )
            self.started.append("redis")
            say(f"  Redis ready at {self.redis_url} (data in {self.cfg.state / 'redis'})")
        if self.es_url is None:
            if not shutil.which("java"):
                raise RunError(
                    "Java 17 is required for the local Elasticsearch node: "
                    "apt-get install openjdk-17-jre-headless (or run `make setup` as root)"
                )
            say("starting Elasticsearch (a minute on the first run) ...")
            self.es_url = run_script(
                [
                    "scripts/elasticsearch.sh",
                    "start",
                    "--home",
                    str(self.cfg.state / "elasticsearch"),
                    "--port",
                    str(port_or_free(ES_DEFAULT_PORT)),
                ],
                "Elasticsearch",
            )
            self.started.append("elasticsearch")
            say(f"  Elasticsearch ready at {self.es_url} (data in {self.cfg.state / 'elasticsearch'})")

    def stop(self) -> None:
        if "elasticsearch" in self.started:
            say("stopping Elasticsearch ...")
            subprocess.run(
                ["scripts/elasticsearch.sh", "stop", "--home", str(self.cfg.state / "elasticsearch")],
                cwd=ROOT,
                capture_output=True,
                timeout=60,
                check=False,
            )
        if "redis" in self.started:
            say("stopping Redis ...")
            subprocess.run(
                ["scripts/redis.sh", "stop", "--dir", str(self.cfg.state / "redis")],
                cwd=ROOT,
                capture_output=True,
                timeout=30,
                check=False,
            )
        self.started.clear()


async def check_reachable(redis_url: str, es_url: str) -> None:
    import redis.asyncio as aioredis
    from elasticsearch import AsyncElasticsearch

    r = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await r.ping()
        info = await r.info("server")
        if int(str(info.get("redis_version", "7")).split(".")[0]) < 7:
            raise RunError(f"Redis at {redis_url} is {info.get('redis_version')}; Newsflow needs Redis 7")
    except RunError:
        raise
    except Exception as e:
        raise RunError(f"cannot reach Redis at {redis_url} ({first_error(e)}); check NEWSFLOW_REDIS_URL") from None
    finally:
        await r.aclose()
    es = AsyncElasticsearch(es_url, request_timeout=10)
    try:
        await es.cluster.health(wait_for_status="yellow", timeout="10s")
    except Exception as e:
        raise RunError(
            f"cannot reach Elasticsearch at {es_url} ({first_error(e)}); check NEWSFLOW_ELASTICSEARCH_URL"
        ) from None
    finally:
        await es.close()


def newsflow_init(env: dict[str, str]) -> None:
    say("newsflow init: consumer groups and index templates ...")
    out = subprocess.run(
        [str(VENV_BIN / "newsflow"), "init", "--wait", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if out.returncode != 0:
        lines = [ln for ln in (out.stderr + out.stdout).strip().splitlines() if ln.strip()]
        raise RunError(f"newsflow init failed: {lines[-1] if lines else f'exit code {out.returncode}'}")
    for line in out.stdout.strip().splitlines():
        say(f"  {line}")


# --- the demo site -------------------------------------------------------------------------------


def demo_port(state: Path) -> int:
    """The demo server's port: chosen once, then kept, because article URLs (and ids) contain it."""
    from newsflow_devtools.processes import free_port

    path = state / "demo" / "port"
    if path.is_file():
        with contextlib.suppress(ValueError):
            return int(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    path.write_text(f"{port}\n")
    return port


# --- progress ------------------------------------------------------------------------------------


@dataclass
class Progress:
    feeds: int = 0
    polls: int = 0
    not_modified: int = 0
    failing_feeds: int = 0
    entries: int = 0
    fetched: int = 0
    parsed: int = 0
    indexed_total: int = 0
    indexed_demo: int = 0
    alerts: int = 0  # distinct alerts of the demo rule (the alerts record index)
    alerts_total: int = 0
    sent: int = 0  # alerts of the demo rule the notifier delivered to every channel
    dead_letters: int = 0
    lag: int = 0  # unprocessed + pending entries over the pipeline's groups
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"}


class Watcher:
    def __init__(self, redis_url: str, es_url: str, demo_ids: list[str]) -> None:
        import redis.asyncio as aioredis
        from elasticsearch import AsyncElasticsearch

        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
        self.es = AsyncElasticsearch(es_url, request_timeout=10)
        self.demo_ids = demo_ids
        self._alert_ids: set[str] = set()

    async def close(self) -> None:
        await self.redis.aclose()
        await self.es.close()

    async def snapshot(self) -> Progress:
        from newsflow_shared import streams

        p = Progress()
        try:
            added: dict[str, int] = {}
            for s in (streams.ENTRIES, streams.RAW, streams.PARSED):
                try:
                    info = await self.redis.xinfo_stream(s)
                    added[s] = int(info.get("entries-added", info.get("length", 0)))
                except Exception:
                    added[s] = 0
                with contextlib.suppress(Exception):
                    for g in await self.redis.xinfo_groups(s):
                        p.lag += int(g.get("lag") or 0) + int(g.get("pending") or 0)
            p.entries, p.fetched, p.parsed = added[streams.ENTRIES], added[streams.RAW], added[streams.PARSED]
            for s in streams.DEAD_LETTER_STREAMS:
                p.dead_letters += int(await self.redis.xlen(s))
            for raw in (await self.redis.hgetall(streams.FEEDS_KEY)).values():
                with contextlib.suppress(ValueError):
                    st = json.loads(raw)
                    p.feeds += 1
                    p.polls += int(st.get("polls") or 0)
                    p.not_modified += int(st.get("not_modified") or 0)
                    p.failing_feeds += bool(st.get("consecutive_failures"))
            for s in (streams.ALERTS, streams.NOTIFICATIONS):  # the notifier's backlog counts as in flight
                with contextlib.suppress(Exception):
                    for g in await self.redis.xinfo_groups(s):
                        p.lag += int(g.get("lag") or 0) + int(g.get("pending") or 0)
        except Exception as e:
            p.errors.append(f"Redis: {first_error(e)}")
        try:
            await self._alerts(p)
            p.sent = await self._sent()
        except Exception as e:
            p.errors.append(f"alerts: {first_error(e)}")
        try:
            resp = await self.es.options(ignore_status=404).count(index="news")
            p.indexed_total = int(resp.get("count", 0))
            if self.demo_ids:
                resp = await self.es.options(ignore_status=404).count(
                    index="news", query={"ids": {"values": self.demo_ids}}
                )
                p.indexed_demo = int(resp.get("count", 0))
        except Exception as e:
            p.errors.append(f"Elasticsearch: {first_error(e)}")
        return p

    async def _alerts(self, p: Progress) -> None:
        """Fired alerts from the alerts record index: the durable record (news.alerts is trimmed once the
        notifier has them). One fingerprint record per fired alert: an alert is counted once."""
        resp = await self.es.options(ignore_status=404).search(
            index="newsflow-alerts",
            query={"bool": {"filter": [{"term": {"kind": "fingerprint"}}, {"term": {"fired": True}}]}},
            size=1000,
            source=["alert_id", "rule_name", "article_id"],
        )
        hits = [h["_source"] for h in resp.get("hits", {}).get("hits", [])]
        self._alert_ids = {
            h["alert_id"] for h in hits if h.get("rule_name") == DEMO_RULE and h.get("article_id") in self.demo_ids_set
        }
        p.alerts, p.alerts_total = len(self._alert_ids), len(hits)

    async def _sent(self) -> int:
        """Demo alerts the notifier delivered to every channel of the rule (its state in Redis)."""
        from newsflow_alerting.state import k_delivery

        sent = 0
        for aid in self._alert_ids:
            outcomes = [json.loads(v) for v in (await self.redis.hgetall(k_delivery(aid))).values()]
            sent += bool(outcomes) and all(o.get("status") == "delivered" for o in outcomes)
        return sent

    @property
    def demo_ids_set(self) -> set[str]:
        if not hasattr(self, "_ids_set"):
            self._ids_set = set(self.demo_ids)
        return self._ids_set


def progress_line(p: Progress, n_demo: int | None) -> str:
    indexed = f"{p.indexed_demo}/{n_demo}" if n_demo else str(p.indexed_total)
    parts = [
        f"feeds {p.feeds} (polled {p.polls}x, {p.not_modified} not modified"
        + (f", {p.failing_feeds} failing" if p.failing_feeds else "")
        + ")",
        f"found {p.entries}",
        f"fetched {p.fetched}",
        f"parsed {p.parsed}",
        f"indexed {indexed}",
        f"alerts {p.alerts if n_demo else p.alerts_total}",
        f"sent {p.sent}",
    ]
    if p.dead_letters:
        parts.append(f"dead letters {p.dead_letters}")
    return " | ".join(parts)


def rich_table(p: Progress, n_demo: int | None, elapsed: float, done: bool) -> Any:
    from rich.table import Table

    t = Table(title=f"Newsflow: local run ({elapsed:.0f} s)", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column(style="dim")
    t.add_row(
        "feeds polled",
        str(p.polls),
        f"{p.feeds} feeds, {p.not_modified} answered 304 Not Modified"
        + (f", {p.failing_feeds} failing" if p.failing_feeds else ""),
    )
    t.add_row("articles found", str(p.entries), "news.entries")
    t.add_row("pages fetched", str(p.fetched), "news.raw")
    t.add_row("articles parsed", str(p.parsed), "news.parsed")
    t.add_row(
        "indexed",
        f"{p.indexed_demo} / {n_demo}" if n_demo else str(p.indexed_total),
        f"{p.indexed_total} documents in the 'news' alias",
    )
    t.add_row(
        "alerts fired", str(p.alerts if n_demo else p.alerts_total), f"rule {DEMO_RULE!r}" if n_demo else "all rules"
    )
    t.add_row("alerts sent", str(p.sent), "by the notifier, to every channel of the rule")
    t.add_row("dead letters", str(p.dead_letters), "newsflow dlq list" if p.dead_letters else "")
    t.add_row("in flight", str(p.lag), "entries waiting or being processed")
    if done:
        t.add_row("", "", "")
        t.add_row("[green]ready[/green]", "", "every demo article indexed, demo alert fired" if n_demo else "")
    for err in p.errors:
        t.add_row("[red]unreachable[/red]", "", err)
    return t


# --- the run -------------------------------------------------------------------------------------


class LocalRun:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.servers = Servers(cfg)
        self.pipeline: Any = None
        self.web: Any = None
        self.demo: Any = None
        self.stop = asyncio.Event()
        self.interrupted = False

    def _on_signal(self) -> None:
        if self.stop.is_set():
            say("(stopping; press Ctrl-C again only if it hangs)")
        self.interrupted = True
        self.stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            return await self._run()
        finally:
            await self.shutdown()

    async def _run(self) -> int:
        cfg = self.cfg
        (cfg.state / "logs").mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.servers.start)
        if self.stop.is_set():
            return 130
        redis_url, es_url = self.servers.redis_url, self.servers.es_url
        assert redis_url is not None and es_url is not None
        (cfg.state / "env").write_text(
            f"export NEWSFLOW_REDIS_URL={redis_url}\nexport NEWSFLOW_ELASTICSEARCH_URL={es_url}\n"
        )
        await check_reachable(redis_url, es_url)

        env = {
            "NEWSFLOW_REDIS_URL": redis_url,
            "NEWSFLOW_ELASTICSEARCH_URL": es_url,
            "NEWSFLOW_RULES_FILE": str(cfg.rules_file),
            "NEWSFLOW_LOG_FORMAT": os.environ.get("NEWSFLOW_LOG_FORMAT", "json"),
        }
        if cfg.demo:
            env |= {k: v for k, v in DEMO_ENV.items() if k not in os.environ}
            # The demo site is on loopback, which the fetcher's SSRF guard refuses by default: open that hole only.
            env["NEWSFLOW_ALLOWED_NETWORKS"] = "127.0.0.0/8"
        else:
            env["NEWSFLOW_FEEDS_FILE"] = str(cfg.feeds_file)
        full_env = {**os.environ, **env}
        full_env.pop("NEWSFLOW_METRICS_PORT", None)
        await asyncio.to_thread(newsflow_init, full_env)

        demo_ids: list[str] = []
        if cfg.demo:
            demo_ids = await self.start_demo()
        await self.register_feeds(redis_url)

        from newsflow_devtools.processes import ALL_SERVICES, Pipeline

        say(f"starting the fetcher, parser, indexer and notifier (logs in {cfg.state / 'logs'}) ...")
        self.pipeline = Pipeline(env, cfg.state / "logs", services=ALL_SERVICES)
        try:
            await asyncio.to_thread(self.pipeline.start, True)
        except (RuntimeError, TimeoutError) as e:
            raise RunError(f"a service did not start: {str(e).splitlines()[0]} (see {cfg.state / 'logs'})") from None
        for proc in self.pipeline:
            say(f"  {proc.name}: pid {proc.proc.pid}, http://127.0.0.1:{proc.port}/metrics and /health")
        await self.start_web(env)
        return await self.watch(redis_url, es_url, demo_ids)

    async def start_web(self, env: dict[str, str]) -> None:
        from newsflow_devtools.processes import ServiceProcess

        port = port_or_free(int(os.environ.get("NEWSFLOW_WEB_PORT") or WEB_DEFAULT_PORT))
        web_env = {**os.environ, **env, "NEWSFLOW_WEB_PORT": str(port), "NEWSFLOW_WEB_HOST": "127.0.0.1"}
        # The web app's /health is on its own port, which is where ServiceProcess probes.
        self.web = ServiceProcess("web", 1, web_env, self.cfg.state / "logs", port=port)
        self.web.start()
        try:
            await asyncio.to_thread(self.web.wait_ready)
        except (RuntimeError, TimeoutError) as e:
            raise RunError(f"the web page did not start: {str(e).splitlines()[0]}") from None
        mode = "read and write with NEWSFLOW_WEB_TOKEN" if os.environ.get("NEWSFLOW_WEB_TOKEN") else "read-only"
        say(f"  web: pid {self.web.proc.pid}, http://127.0.0.1:{port}/ ({mode})")

    async def start_demo(self) -> list[str]:
        from newsflow_devtools.demo import DemoFeedServer, DemoServerError
        from newsflow_shared.ids import article_id
        from newsflow_shared.urls import canonicalize

        port = demo_port(self.cfg.state)
        self.demo = DemoFeedServer(self.cfg.articles, self.cfg.seed, port=port)
        try:
            await self.demo.start()
        except DemoServerError as e:
            raise RunError(
                f"demo feed server: {e}. The demo keeps one port so that its article URLs stay the same; "
                f"free port {port}, or delete {self.cfg.state / 'demo' / 'port'} to pick another "
                "(articles are then indexed again under new URLs)"
            ) from None
        say(
            f"demo feed server: {len(self.demo.corpus)} sample articles at {self.demo.base_url}/ "
            f"({len(self.demo.feed_urls)} feeds: RSS, Atom, JSON Feed)"
        )
        return [article_id(canonicalize(u)) for u in self.demo.article_urls]

    async def register_feeds(self, redis_url: str) -> None:
        import redis.asyncio as aioredis

        from newsflow_feeds.registry import FeedRegistry

        r = aioredis.Redis.from_url(redis_url)
        try:
            reg = FeedRegistry(r)
            port_file = self.cfg.state / "demo" / "port"
            demo_prefix = f"http://127.0.0.1:{port_file.read_text().strip()}/" if port_file.is_file() else None
            if self.demo is not None:
                wanted = [{"url": u, "interval": DEMO_FEED_INTERVAL_S, "title": None} for u in self.demo.feed_urls]
            else:
                wanted = self.cfg.feeds
                # Feeds of an earlier demo run would only fail now that no demo server answers.
                for info in await reg.list():
                    if demo_prefix and info.url.startswith(demo_prefix):
                        await reg.remove(info.url)
                        say(f"  removed demo feed {info.url}")
            created = 0
            for f in wanted:
                _, new = await reg.add(f["url"], interval=f.get("interval"), title=f.get("title"))
                created += new
            say(f"feeds: {len(wanted)} registered ({created} new, {len(wanted) - created} already known)")
        finally:
            await r.aclose()

    async def watch(self, redis_url: str, es_url: str, demo_ids: list[str]) -> int:
        cfg = self.cfg
        n_demo = len(demo_ids) or None
        watcher = Watcher(redis_url, es_url, demo_ids)
        started = time.monotonic()
        interactive = sys.stdout.isatty() and not cfg.until_done
        last_line = ""
        last_print = 0.0
        done_at: float | None = None
        live = None
        if interactive:
            from rich.live import Live

            live = Live(auto_refresh=False, transient=False)
            live.start()
        try:
            while True:
                p = await watcher.snapshot()
                elapsed = time.monotonic() - started
                done = bool(n_demo) and p.indexed_demo >= (n_demo or 0) and p.alerts >= 1 and p.sent >= 1
                if live is not None:
                    live.update(rich_table(p, n_demo, elapsed, done), refresh=True)
                else:
                    line = progress_line(p, n_demo)
                    if line != last_line and (time.monotonic() - last_print >= 2 or done):
                        say(f"[{elapsed:5.0f} s] {line}")
                        last_line, last_print = line, time.monotonic()
                    for err in p.errors:
                        say(f"  unreachable: {err}")
                if dead := [proc for proc in [*self.pipeline, self.web] if proc is not None and not proc.running]:
                    proc = dead[0]
                    raise RunError(
                        f"{proc.name} exited with code {proc.proc.returncode}; "
                        f"see {proc.log_path} (last line: {proc.tail(1)[:300]})"
                    )
                if done and done_at is None:
                    done_at = elapsed
                    if live is not None:
                        live.stop()
                        live = None
                    self.print_ready(es_url, p, elapsed)
                    if interactive:
                        from rich.live import Live

                        live = Live(auto_refresh=False, transient=False)
                        live.start()
                # Let the last in-flight entries settle so that the counts printed are final.
                settled = p.lag == 0 or elapsed - (done_at or elapsed) > 10
                if done and cfg.until_done and settled:
                    say("RESULT " + json.dumps({**p.as_dict(), "articles": n_demo, "seconds": round(elapsed, 1)}))
                    return 0 if p.alerts == 1 else 1
                if cfg.until_done and elapsed > cfg.timeout_s:
                    say("RESULT " + json.dumps({**p.as_dict(), "articles": n_demo, "seconds": round(elapsed, 1)}))
                    raise RunError(
                        f"not done after {cfg.timeout_s:.0f} s: {progress_line(p, n_demo)} "
                        f"(logs in {cfg.state / 'logs'})"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1.0)
                if self.stop.is_set():
                    return 130 if self.interrupted else 0
        finally:
            if live is not None:
                with contextlib.suppress(Exception):
                    live.stop()
            await watcher.close()

    def print_ready(self, es_url: str, p: Progress, elapsed: float) -> None:
        from newsflow_cli.common import CliSettings

        nf = str(VENV_BIN / "newsflow")
        rel = os.path.relpath(nf, Path.cwd()) if str(nf).startswith(str(Path.cwd())) else nf
        say("")
        say(
            f"Newsflow is running: {p.indexed_demo or p.indexed_total} articles searchable after {elapsed:.0f} s, "
            f"{p.alerts} alert(s) for {DEMO_RULE!r}."
        )
        if self.web is not None:
            say(f"  Web page:      http://127.0.0.1:{self.web.port}/search")
        say(f"  Elasticsearch: {es_url}/news/_search")
        say(f'  Search:        {rel} search "rocket attack"')
        say(f"  Status:        {rel} status")
        say(f"  Logs:          {self.cfg.state / 'logs'}")
        defaults = CliSettings.model_fields
        if (self.servers.redis_url, es_url) != (defaults["redis_url"].default, defaults["elasticsearch_url"].default):
            env_file = self.cfg.state / "env"
            say(
                f"  (in another terminal, first: source {os.path.relpath(env_file)}  -- the servers are not "
                "on their usual ports)"
            )
        if not self.cfg.until_done:
            say("Press Ctrl-C to stop everything.")
        say("")

    async def shutdown(self) -> None:
        # Each step runs whatever happened to the one before: nothing may be left running.
        try:
            if self.web is not None:
                await asyncio.to_thread(self.web.stop)
                self.web = None
            if self.pipeline is not None:
                say("stopping the services (SIGTERM; they finish what they hold) ...")
                codes = await asyncio.to_thread(self.pipeline.stop)
                bad = {k: v for k, v in codes.items() if v not in (0, None, -signal.SIGTERM)}
                if bad:
                    say(f"  services exited with {bad} (see {self.cfg.state / 'logs'})")
                self.pipeline = None
        finally:
            try:
                if self.demo is not None:
                    await self.demo.stop()
                    self.demo = None
            finally:
                await asyncio.to_thread(self.servers.stop)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = load_config(argv)
        return asyncio.run(LocalRun(cfg).run())
    except RunError as e:
        with contextlib.suppress(OSError):
            print(f"make run: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
