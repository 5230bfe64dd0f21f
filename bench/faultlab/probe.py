"""Run inside a lab namespace (``ip netns exec NS python -m bench.faultlab.probe``): reads
one JSON request on stdin, prints one JSON answer. Standard library only, so it starts
fast.

- ``{"http": [{"url": ..., "host": ...}, ...]}`` -> ``{"http": [{"status", "body",
  "fault"}]}`` (``status`` 0 when nothing answered; ``fault`` is the ``X-Fault`` header);
- ``{"reach": ["ADDR", ...]}`` -> ``{"reach": {"ADDR": true|false}}``: whether the address
  answers a TCP connection attempt on port 9 at all (a refusal counts: it proves that
  packets flow both ways).
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 2.0


def fetch(url: str, host: str) -> dict[str, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=TIMEOUT)
    try:
        conn.request("GET", parts.path or "/", headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        body = response.read(65536).decode("utf-8", "replace")
        return {"status": response.status, "body": body, "fault": response.getheader("X-Fault")}
    except (OSError, http.client.HTTPException):
        return {"status": 0, "body": "", "fault": None}
    finally:
        conn.close()


def reach(addr: str) -> bool:
    try:
        with socket.create_connection((addr, 9), timeout=TIMEOUT):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer: dict[str, Any] = {}
    if "http" in request:
        answer["http"] = [fetch(r["url"], r["host"]) for r in request["http"]]
    if "reach" in request:
        answer["reach"] = {a: reach(a) for a in request["reach"]}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
