"""Destinations Newsflow sends to (alert webhooks, chat services): checked when an operator names one, and
reached only through the SSRF guard, like every page the fetcher downloads.

The check when a rule is added is a courtesy: it tells the operator at once that a URL points at a private
or metadata address. The guard in the network backend is the enforcement: a name may resolve differently
later, and only the connection-time check (`GuardedBackend`) sees the address actually used.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from newsflow_http.httpclient import make_transport
from newsflow_http.settings import HttpSettings
from newsflow_http.ssrf import AddressPolicy, Resolver, _literal, system_resolver

RESOLVE_TIMEOUT_S = 3.0


class BlockedDestination(ValueError):
    """A destination URL the SSRF guard would refuse, said in one line."""


def policy_of(settings: HttpSettings) -> AddressPolicy:
    return AddressPolicy(settings.allow_private_addresses, settings.allowed_networks)


async def check_destination(url: str, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
    """Raise `BlockedDestination` when `url`'s host is, or resolves to, an address `policy` refuses.

    A name that does not resolve now is let through: it is checked again on every connection.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = _literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                addresses = await (resolver or system_resolver)(host, parts.port or 443)
        except (OSError, TimeoutError):
            return
    for address in addresses:
        if not policy.permits(address):
            where = host if literal is not None else f"{host} ({address})"
            raise BlockedDestination(
                f"{url} refused: {where} is not a public address; Newsflow sends only to public addresses "
                "unless NEWSFLOW_ALLOWED_NETWORKS lists the network"
            )


def guarded_client(
    settings: HttpSettings,
    *,
    timeout_s: float,
    resolver: Resolver | None = None,
    max_connections: int = 32,
) -> httpx.AsyncClient:
    """An httpx client for POSTs to alert destinations: every connection through the SSRF guard and the
    allow-list, no redirects followed (a redirect could lead anywhere; a webhook that moved must be
    re-configured), the whole request bounded by `timeout_s`."""
    return httpx.AsyncClient(
        transport=make_transport(settings, resolver, max_connections),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, settings.connect_timeout_s)),
        headers={"User-Agent": settings.user_agent},
        follow_redirects=False,
        trust_env=False,
    )
