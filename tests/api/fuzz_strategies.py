"""Hypothesis strategies for API requests, driven by the OpenAPI document.

Bodies come in four flavours: built from the operation's schema (with realistic values
for fields whose names say what they hold, so validation goes deep), the same with one
part replaced by arbitrary JSON, arbitrary JSON, and arbitrary bytes.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
ANY_JSON = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

HOSTS = st.sampled_from(["shop.example.test", "a.b.c", "*.example.com", "www.example.*", "x"])
ADDRESSES = st.sampled_from(
    ["127.0.0.1:9001", "10.0.0.5:80", "app.internal:8080", "[::1]:443", "1.2.3.4:0", "nope"]
)
DURATIONS = st.sampled_from(["30s", "250ms", "1m30s", 5, 0, "0s", "1d", "bad"])
HINTS: dict[str, st.SearchStrategy[Any]] = {
    "address": ADDRESSES,
    "path": st.sampled_from(["/", "/api", "/a b", "relative"]),
    "server_names": st.lists(HOSTS, min_size=1, max_size=3),
    "names": st.lists(HOSTS, min_size=1, max_size=3),
    "entry_points": st.lists(st.sampled_from(["http", "https", "nope"]), min_size=1, max_size=2),
    "url": st.sampled_from(["https://example.com/", "/moved", "javascript:alert(1)"]),
    "hash_key": st.sampled_from(["$request_uri", "$remote_addr$uri", "x"]),
    "source": st.sampled_from(["10.0.0.0/8", "all", "1.2.3.4", "10.1.2.3/8", "manual", "acme"]),
    "fail_timeout": DURATIONS,
    "timeout": DURATIONS,
    "max_age": DURATIONS,
    "ttl": DURATIONS,
    "client_max_body_size": st.sampled_from(["10m", "1g", 1024, "huge"]),
    "not_before": st.sampled_from(["2024-01-01T00:00:00Z", "yesterday"]),
    "not_after": st.sampled_from(["2030-01-01T00:00:00Z", "2020-01-01T00:00:00+00:00"]),
    "fingerprint": st.sampled_from(["ab" * 32, "AB:" * 31 + "AB", "zz"]),
}


class SchemaStrategies:
    """Values for the schemas of one OpenAPI document (a practical subset of JSON Schema)."""

    def __init__(self, doc: dict[str, Any], ids: st.SearchStrategy[str]) -> None:
        self.schemas: dict[str, Any] = doc["components"]["schemas"]
        self.ids = ids

    def for_schema(
        self, schema: dict[str, Any], name: str = "", depth: int = 0
    ) -> st.SearchStrategy[Any]:
        if name in HINTS:
            return HINTS[name]
        if name in ("upstream", "certificate", "access_list", "organization", "id"):
            return self.ids
        if depth > 6:
            return JSON_LEAVES
        if "$ref" in schema:
            target = self.schemas[schema["$ref"].rsplit("/", 1)[1]]
            return st.deferred(lambda: self.for_schema(target, name, depth + 1))
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        if "anyOf" in schema or "oneOf" in schema:
            options: list[dict[str, Any]] = schema.get("anyOf") or schema.get("oneOf") or []
            return st.one_of([self.for_schema(o, name, depth + 1) for o in options])
        kind = schema.get("type")
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            item = self.for_schema(schema.get("items", {}), "", depth + 1)
            low = schema.get("minItems", 0)
            return st.lists(item, min_size=min(low, 3), max_size=min(schema.get("maxItems", 4), 4))
        if kind == "string":
            return st.text(max_size=20) | st.sampled_from(["web", "edge-1", "x" * 70])
        if kind == "integer":
            low, high = schema.get("minimum", -10), schema.get("maximum", 70000)
            return st.integers(min_value=low - 1, max_value=high + 1)
        if kind == "number":
            return st.floats(min_value=-1, max_value=1e7, allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        return ANY_JSON

    def _object(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        props: dict[str, Any] = schema.get("properties", {})
        if not props:
            return st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
        required = [p for p in schema.get("required", []) if p in props]
        optional = [p for p in props if p not in required]
        fields = {p: self.for_schema(props[p], p, depth + 1) for p in props}
        return st.fixed_dictionaries(
            {p: fields[p] for p in required}, optional={p: fields[p] for p in optional}
        )


def mutate(value: Any) -> st.SearchStrategy[Any]:
    """``value`` with one part (maybe the whole) replaced by arbitrary JSON."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix]
        if isinstance(node, dict):
            for k, v in node.items():
                out += paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out += paths(v, (*prefix, i))
        return out

    def replace(node: Any, path: tuple[Any, ...], new: Any) -> Any:
        if not path:
            return new
        copy = json.loads(json.dumps(node))
        target = copy
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = new
        return copy

    return st.tuples(st.sampled_from(paths(value)), ANY_JSON).map(lambda pn: replace(value, *pn))
