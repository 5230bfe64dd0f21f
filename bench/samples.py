"""Realistic sample entities for benchmarks and large-state tests (plain API-shaped dicts)."""

from __future__ import annotations

from typing import Any

__all__ = ["upstream", "vhost"]


def upstream(label: str, octets: tuple[int, int]) -> dict[str, Any]:
    """An upstream ``pool-<label>`` of two servers on 10.1.a.b and 10.2.a.b."""
    a, b = octets
    return {
        "name": f"pool-{label}",
        "method": "least_conn",
        "servers": [
            {"address": f"10.1.{a}.{b}:8080"},
            {"address": f"10.2.{a}.{b}:8080", "weight": 2, "max_fails": 3},
        ],
        "keepalive": 16,
    }


def vhost(label: str, upstream_id: str, n: int) -> dict[str, Any]:
    """A TLS (ACME) vhost ``site<label>`` proxying to ``upstream_id``, with headers; one
    in ten also serves static files."""
    site = f"site{label}"
    locations: list[dict[str, Any]] = [
        {
            "path": "/",
            "action": "proxy",
            "upstream": upstream_id,
            "request_headers": {"X-Site": site, "X-Tier": "web"},
        }
    ]
    if n % 10 == 0:
        locations.append({"path": "/static/", "action": "static", "root": f"/srv/{site}/static"})
    return {
        "name": f"Site {label}",
        "server_names": [f"{site}.example.com", f"www.{site}.example.com"],
        "entry_points": ["http", "https"],
        "tls": {"mode": "acme", "redirect_http": True, "hsts": {"max_age": "180d"}},
        "locations": locations,
        "response_headers": {"X-Frame-Options": "DENY", "X-Served-By": "nxmesh"},
        "client_max_body_size": "10m",
        "proxy_read_timeout": "60s",
    }
