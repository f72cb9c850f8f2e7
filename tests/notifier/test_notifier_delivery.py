"""The notifier against real receivers: every channel's body and headers, retries with backoff, dead letters
with the reason and their replay, the SSRF guard at send time, e-mail over STARTTLS with AUTH."""

from __future__ import annotations

import json

import pytest
from notifier_helpers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Mailbox,
    Receiver,
    add_rules,
    alert_for,
    article,
    cli,
    index_articles,
    notifier_settings,
    publish_alerts,
    running_notifier,
)
from waiting import wait_until

from newsflow_alerting.state import NotifierState
from newsflow_notifier.channels.send import sign
from newsflow_search.rules import Rule
from newsflow_shared import streams
from newsflow_shared.models import DeadLetter
from newsflow_shared.runtime import DATA_FIELD

pytestmark = pytest.mark.integration

ROCKET = "Rockets hit the port of Umm Qasr overnight, damaging two cranes and a fuel depot, officials said."


async def dead_letters(redis, stream: str = streams.NOTIFICATIONS) -> list[DeadLetter]:  # type: ignore[no-untyped-def]
    return [DeadLetter.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.dlq(stream))]


async def test_every_http_channel_gets_its_own_body_with_the_idempotency_key(
    ready, receiver: Receiver, redis_url: str, es_url: str
) -> None:
    es, redis = ready
    rule = Rule(
        name="rocket",
        query="rocket attack",
        channels=[
            {"webhook": f"{receiver.url}/hook", "secret": "a-long-shared-secret"},
            {"slack": f"{receiver.url}/slack"},
            {"teams": f"{receiver.url}/teams"},
            {"discord": f"{receiver.url}/discord"},
            {"telegram": {"chat_id": "-100123", "token": "123456:ABCdefGHIjklMNOpqr"}},
            "log",
        ],
    )
    await add_rules(es, rule)
    a = article("https://news.example.org/port", "Rockets hit Umm Qasr port", ROCKET)
    await index_articles(es, [a])
    alert = alert_for(rule, a, snippet="a «rocket attack» on the port")
    settings = notifier_settings(redis_url, es_url, telegram_api_url=f"{receiver.url}/tg")
    async with running_notifier(settings):
        await publish_alerts(redis, [alert])
        await wait_until(lambda: len(receiver.requests) >= 5, what="five HTTP deliveries")
        state = NotifierState(redis)
        await wait_until(
            lambda: _all_delivered(state, alert.alert_id, len(rule.channels)), what="every channel recorded"
        )
    (hook,) = receiver.on("/hook")
    body = hook.json()
    assert body["type"] == "newsflow.alert" and body["alert_id"] == alert.alert_id and body["url"] == a.url
    assert hook.headers["idempotency-key"] == f"{alert.alert_id}:{rule.channels[0].key}"
    # The signature verifies with the shared secret over "<timestamp>." + the body, as a receiver checks it.
    ts = hook.headers["x-newsflow-timestamp"]
    assert hook.headers["x-newsflow-signature"] == sign("a-long-shared-secret", ts, hook.body)
    assert hook.headers["x-newsflow-signature"] != sign("another-secret!", ts, hook.body)
    (slack,) = receiver.on("/slack")
    assert (
        list(slack.json()) == ["text"]
        and f"<{a.url}|" in slack.json()["text"]
        and "*rocket attack*" in slack.body.decode()
    )
    (teams,) = receiver.on("/teams")
    card = teams.json()["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert any(a.url in b.get("text", "") for b in card["content"]["body"])
    (discord,) = receiver.on("/discord")
    assert a.url in discord.json()["content"] and discord.json()["allowed_mentions"] == {"parse": []}
    (tg,) = receiver.on("/tg/bot123456:ABCdefGHIjklMNOpqr/sendMessage")
    assert tg.json()["chat_id"] == "-100123" and tg.json()["parse_mode"] == "HTML" and a.url in tg.json()["text"]
    # Each channel's key is its own, so a receiver can tell a repeat from another channel's copy.
    assert len({r.headers["idempotency-key"] for r in receiver.requests}) == 5
    assert await dead_letters(redis) == []


async def _all_delivered(state: NotifierState, nid: str, n: int) -> bool:
    got = await state.deliveries(nid)
    return len(got) == n and all(d.status == "delivered" for d in got.values())


async def test_a_receiver_that_answers_500_then_recovers_gets_the_alert_once(
    ready, receiver: Receiver, redis_url: str, es_url: str
) -> None:
    es, redis = ready
    rule = Rule(name="rocket", query="rocket attack", channels=[f"{receiver.url}/flaky"])
    await add_rules(es, rule)
    a = article("https://news.example.org/port", "Rockets hit Umm Qasr port", ROCKET)
    await index_articles(es, [a])
    alert = alert_for(rule, a)
    async with running_notifier(notifier_settings(redis_url, es_url, delivery_attempts=4)):
        await publish_alerts(redis, [alert])
        state = NotifierState(redis)
        await wait_until(lambda: _all_delivered(state, alert.alert_id, 1), what="delivered after two 500s")
    assert [r.headers["idempotency-key"] for r in receiver.on("/flaky")] == [
        f"{alert.alert_id}:{rule.channels[0].key}"
    ] * 3
    (d,) = (await state.deliveries(alert.alert_id)).values()
    assert d.attempts == 3 and d.detail == "HTTP 200" and d.latency_s is not None and d.latency_s < 60
    assert await dead_letters(redis) == []


async def test_a_receiver_slower_than_the_timeout_is_dead_lettered_then_replayed(
    ready, receiver: Receiver, redis_url: str, es_url: str, settings
) -> None:
    es, redis = ready
    receiver.slow_s = 2.5  # the notifier's timeout is 1 s
    rule = Rule(name="rocket", query="rocket attack", channels=[f"{receiver.url}/slow", f"{receiver.url}/fast"])
    await add_rules(es, rule)
    a = article("https://news.example.org/port", "Rockets hit Umm Qasr port", ROCKET)
    await index_articles(es, [a])
    alert = alert_for(rule, a)
    state = NotifierState(redis)
    async with running_notifier(notifier_settings(redis_url, es_url)):
        await publish_alerts(redis, [alert])
        await wait_until(lambda: _dead(redis), what="a dead letter")
        (dead,) = await dead_letters(redis)
        assert dead.reason == "timeout" and "after 3 attempts" in dead.error
        slow_key = f"{alert.alert_id}:{rule.channels[0].key}"
        # Three attempts, all with the same key (the receiver may have processed each: it can drop repeats).
        assert receiver.keys("/slow") == {slow_key: 3}
        assert receiver.keys("/fast") == {f"{alert.alert_id}:{rule.channels[1].key}": 1}  # the other channel went on
        deliveries = await state.deliveries(alert.alert_id)
        assert deliveries[rule.channels[0].key].status == "failed" and deliveries[rule.channels[0].key].attempts == 3
        # The receiver is fast again; the operator replays the dead letter: sent once more, to that channel only.
        receiver.slow_s = 0.0
        out = await cli("dlq", "replay", streams.NOTIFICATIONS, "--all", NEWSFLOW_REDIS_URL=redis_url)
        assert out.returncode == 0 and "replayed 1" in out.stdout, out.stderr
        await wait_until(lambda: _all_delivered(state, alert.alert_id, 2), what="the replay delivered")
    assert (
        receiver.keys("/slow") == {slow_key: 4}
        and receiver.keys("/fast")[f"{alert.alert_id}:{rule.channels[1].key}"] == 1
    )
    assert await redis.xlen(streams.dlq(streams.NOTIFICATIONS)) == 0


async def _dead(redis) -> bool:  # type: ignore[no-untyped-def]
    return await redis.xlen(streams.dlq(streams.NOTIFICATIONS)) > 0


async def test_a_refusal_is_dead_lettered_at_once_and_a_private_destination_is_never_reached(
    ready, receiver: Receiver, redis_url: str, es_url: str
) -> None:
    es, redis = ready
    port = receiver.url.rsplit(":", 1)[1]
    # A name the operator's DNS resolves to a private address: the guard refuses it at connection time,
    # whatever the check said when the rule was added (no allow-list here).
    rule = Rule(
        name="rocket",
        query="rocket attack",
        channels=[f"{receiver.url}/reject", f"http://hooks.internal.example:{port}/private"],
    )
    await add_rules(es, rule)
    a = article("https://news.example.org/port", "Rockets hit Umm Qasr port", ROCKET)
    await index_articles(es, [a])

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    settings = notifier_settings(redis_url, es_url, allowed_networks=[])
    async with running_notifier(settings, resolver=resolver):
        # The loopback receiver itself is refused too without the allow-list: only the literal-IP 400 path
        # needs it, so give that one its own run below.
        await publish_alerts(redis, [alert_for(rule, a)])
        await wait_until(lambda: _dead_count(redis, 2), what="two dead letters")
    reasons = sorted(d.reason for d in await dead_letters(redis))
    assert reasons == ["blocked", "blocked"]
    assert receiver.requests == []  # nothing ever reached the private address

    await redis.delete(streams.dlq(streams.NOTIFICATIONS))
    rule2 = Rule(name="reject", query="rocket", channels=[f"{receiver.url}/reject"])
    await add_rules(es, rule2)
    async with running_notifier(notifier_settings(redis_url, es_url)):
        await publish_alerts(redis, [alert_for(rule2, a)])
        await wait_until(lambda: _dead_count(redis, 1), what="a dead letter")
    (dead,) = await dead_letters(redis)
    assert dead.reason == "http-400" and len(receiver.on("/reject")) == 1  # a refusal is not retried


async def _dead_count(redis, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await redis.xlen(streams.dlq(streams.NOTIFICATIONS)) >= n


async def test_email_over_starttls_with_auth_has_text_and_html(
    ready, smtp_server: Mailbox, redis_url: str, es_url: str
) -> None:
    es, redis = ready
    rule = Rule(name="rocket", query="rocket attack", channels=[{"email": ["desk@example.org", "ops@example.org"]}])
    await add_rules(es, rule)
    a = article("https://news.example.org/port", "Rockets hit <Umm Qasr> port", ROCKET)
    await index_articles(es, [a])
    alert = alert_for(rule, a, snippet="a «rocket attack» on the port")
    settings = notifier_settings(
        redis_url,
        es_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_security="starttls",
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        smtp_ca_certs=smtp_server.ca_file,
        smtp_from="Newsflow <alerts@example.org>",
    )
    async with running_notifier(settings):
        await publish_alerts(redis, [alert])
        await wait_until(lambda: len(smtp_server.messages) == 1, what="one e-mail")
    sender, rcpts, msg = smtp_server.messages[0]
    assert sender == "alerts@example.org" and rcpts == ["desk@example.org", "ops@example.org"]
    assert smtp_server.logins == [SMTP_USER]
    assert msg["Subject"].startswith("[Newsflow] rocket: Rockets hit")
    assert msg["Message-ID"].startswith(f"<{alert.alert_id}.") and msg["X-Newsflow-Idempotency-Key"]
    plain = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    assert a.url in plain and "rocket attack" in plain and "«" not in plain
    assert f'href="{a.url}"' in html and "&lt;Umm Qasr&gt;" in html and "<b>rocket attack</b>" in html


async def test_a_wrong_smtp_password_is_dead_lettered_with_the_reason(
    ready, smtp_server: Mailbox, redis_url: str, es_url: str
) -> None:
    es, redis = ready
    rule = Rule(name="rocket", query="rocket attack", channels=[{"email": "desk@example.org"}])
    await add_rules(es, rule)
    a = article("https://news.example.org/port", "Rockets hit Umm Qasr port", ROCKET)
    await index_articles(es, [a])
    settings = notifier_settings(
        redis_url,
        es_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_username=SMTP_USER,
        smtp_password="wrong",
        smtp_ca_certs=smtp_server.ca_file,
    )
    async with running_notifier(settings):
        await publish_alerts(redis, [alert_for(rule, a)])
        await wait_until(lambda: _dead(redis), what="a dead letter")
    (dead,) = await dead_letters(redis)
    assert dead.reason == "smtp-535" and smtp_server.messages == []
    listed = await cli("dlq", "list", streams.NOTIFICATIONS, "--json", NEWSFLOW_REDIS_URL=redis_url)
    assert json.loads(listed.stdout.splitlines()[0])["reason"] == "smtp-535"
