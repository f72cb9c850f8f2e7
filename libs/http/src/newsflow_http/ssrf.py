"""Server-side request forgery guard.

Feeds are untrusted input: a link in one can point at the cluster's own network (Redis, the cloud
metadata service, an admin console). The guard sits in the HTTP client's network backend, where
the TCP connection is made: the host name is resolved once, every address is checked, and the
connection goes to the checked address. So a redirect to a private address is caught like a
direct link, and a DNS answer that changes between a check and the connect (rebinding) cannot
slip through, because there is no second lookup.

An address is refused unless it is globally routable (`ipaddress`'s `is_global`, which rules out
loopback, RFC 1918, link-local incl. 169.254.169.254, CGNAT, unique-local IPv6, documentation and
reserved ranges) or it lies in one of the explicitly allowed networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._utils import is_socket_readable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Named although is_global already refuses them: these are what an attacker aims for.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


class BlockedAddressError(Exception):
    """The URL's host resolves to an address the guard refuses."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, which is not a public address")
        self.host = host
        self.address = address


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


class AddressPolicy:
    def __init__(self, allow_private: bool = False, allowed_networks: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]

    def permits(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
        if any(ip in net for net in self.allowed):
            return True
        if self.allow_private:
            return True
        return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class _Stream(AsyncNetworkStream):
    """A connection as httpcore's AnyIO backend makes it, with its liveness check made cheap.

    httpcore asks every idle connection of a pool whether it is readable (closed by the server)
    whenever a request starts or ends. The AnyIO stream answers from `extra(raw_socket)`, and anyio
    builds all of a socket's attributes for any one of them, `getpeername()` included: a syscall per
    connection per check, 4 % of the fetcher's CPU in the pipeline benchmark's profile. The raw socket
    never changes for the life of the connection, so it is looked up once.
    """

    def __init__(self, inner: AsyncNetworkStream) -> None:
        self._inner = inner
        self._sock: socket.socket | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
    ) -> AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            if self._sock is None:
                self._sock = self._inner.get_extra_info("socket")
            if self._sock is not None:
                return is_socket_readable(self._sock)
        return self._inner.get_extra_info(info)


class GuardedBackend(AsyncNetworkBackend):
    """httpcore network backend that resolves, checks, then connects to the checked address."""

    def __init__(
        self, policy: AddressPolicy, resolver: Resolver | None = None, inner: AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy
        self.resolver = resolver or system_resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def resolve_checked(self, host: str, port: int) -> list[str]:
        literal = _literal(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self.resolver(host, port)
            except OSError as e:
                raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
            if not addresses:
                raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        # All of them, not just the first: a name with one public and one private address would
        # otherwise be a coin toss.
        for a in addresses:
            if not self.policy.permits(a):
                raise BlockedAddressError(host, a)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        addresses = await self.resolve_checked(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                stream = await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
                return _Stream(stream) if isinstance(self.inner, httpcore.AnyIOBackend) else stream
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        raise BlockedAddressError(path, "unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
