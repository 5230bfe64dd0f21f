"""Reading request bodies: size cap, media type, strict JSON, an object at the top.

Strict means: UTF-8, no ``NaN``/``Infinity`` (nor numbers that overflow to it), no key
given twice in one object, at most :data:`MAX_DEPTH` levels of nesting. Anything else is
refused before it reaches a model.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import ClientDisconnect, Request

from crdt.schema import FieldError
from node.api.problems import ApiProblem, validation_problem

__all__ = ["DEFAULT_MAX_BODY", "MAX_DEPTH", "read_object"]

DEFAULT_MAX_BODY = 1024 * 1024
MAX_DEPTH = 32
_JSON_TYPES = ("application/json", "application/merge-patch+json")
_CURL_DEFAULT = "application/x-www-form-urlencoded"
"""What ``curl -d`` sends without ``-H content-type:``; the body is read as JSON anyway."""


def _check_media_type(request: Request) -> None:
    value = request.headers.get("content-type")
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in (*_JSON_TYPES, _CURL_DEFAULT) or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise ApiProblem(415, "unsupported-media-type", f"send JSON (application/json), not {media}")


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(413, "body-too-large", f"the request body is larger than {limit} bytes")


async def read_bytes(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiProblem(400, "bad-request", "the client went away mid-body") from None
    return b"".join(chunks)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice in one object")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiProblem(400, "bad-json", "the request needs a JSON body")
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite,
        )
    except json.JSONDecodeError as exc:
        detail = f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise ApiProblem(400, "bad-json", detail) from None
    except UnicodeDecodeError:
        raise ApiProblem(400, "bad-json", "the body is not UTF-8") from None
    except RecursionError:
        raise ApiProblem(
            400, "bad-json", f"the body nests deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError as exc:
        raise ApiProblem(400, "bad-json", f"the body is not valid JSON: {exc}") from None
    if _depth(value) > MAX_DEPTH:
        raise ApiProblem(400, "bad-json", f"the body nests deeper than {MAX_DEPTH} levels")
    return value


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, or a problem (400, 413, 415, 422)."""
    _check_media_type(request)
    value = parse_json(await read_bytes(request, limit))
    if not isinstance(value, dict):
        raise validation_problem([FieldError(field="(body)", reason="must be a JSON object")])
    return value
