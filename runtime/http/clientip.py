"""The client's IP: the socket peer, or — only when the peer is a trusted proxy (``runtime.trusted_proxies``) —
the right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy.

uvicorn's own proxy-header handling is off (``__main__``): it trusts 127.0.0.1 by default, so any local client
could forge its address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientIP:
    def __init__(self, trusted_proxies: list[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in trusted_proxies)
        self._trusted = lru_cache(maxsize=4096)(self._is_trusted)

    def _is_trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "?"
        if not self.networks or not self._trusted(peer):
            return peer
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        hops = [h.strip() for h in ",".join(forwarded).split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop if _valid(hop) else peer
        return hops[0] if hops and _valid(hops[0]) else peer


def _valid(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True
