"""The OpenAPI document: paths from FastAPI, schemas generated here from the models.

Request bodies are read and validated by the API itself (strict JSON, size cap, unknown
fields refused), so FastAPI sees no body parameters; each route documents its body and
responses with ``openapi_extra``/``responses`` pointing at the components built here:

- ``<Kind>`` - an entity as returned (fields of newer versions may appear: open objects);
- ``<Kind>Input`` / ``<Kind>Create`` / ``<Kind>Patch`` - bodies of PUT / POST / PATCH
  (closed objects: unknown fields are refused);
- ``Problem`` - every error.

``python -m node.api.openapi`` prints the document (committed as docs/openapi.json).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any, cast

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from node.api import models
from node.api.problems import PROBLEM_JSON
from node.api.resources import RESOURCES, Resource

__all__ = ["body_doc", "build_openapi", "json_doc", "problems_doc", "ref"]

_OUTPUT_MODELS: tuple[type[BaseModel], ...] = (
    models.Member,
    models.MemberList,
    models.Invite,
    models.Status,
    models.NodeReport,
    models.NodeConfig,
    models.Problem,
    models.InvalidEntity,
    models.AcmeSubjectList,
    models.CertificateStatus,
    models.RenewalRequested,
    models.AuditList,
)
_INPUT_MODELS: tuple[type[BaseModel], ...] = (
    models.LabelsRequest,
    models.WorkspacesRequest,
    models.InviteRequest,
    models.KeyPairRequest,
)
_PREFIX = "#/components/schemas/"
_RENAMES = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": _PREFIX + name}


def json_doc(description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_PROBLEM_TEXT = {
    400: "Malformed JSON",
    403: "The caller's role does not allow this",
    404: "No such resource",
    409: "Conflicts with the current state",
    413: "Body larger than the cap",
    415: "Body is not JSON",
    422: "Invalid input; `errors` names each field",
    503: "The store refuses writes (read-only, damaged)",
    507: "The store's disk is full",
}


def problems_doc(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": _PROBLEM_TEXT[status],
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
        for status in statuses
    }


def body_doc(schema_name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref(schema_name)}},
        }
    }


def _fix_keywords(node: Any, closed: bool) -> Any:
    """pydantic leaks ge/le on constrained ints; close input objects."""
    if isinstance(node, dict):
        out = {_RENAMES.get(k, k): _fix_keywords(v, closed) for k, v in node.items()}
        if closed and out.get("type") == "object" and "properties" in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_fix_keywords(v, closed) for v in node]
    return node


def _defs(models: Iterable[type[BaseModel]], mode: str, suffix: str) -> dict[str, Any]:
    pairs = [(m, mode) for m in models]
    _, top = models_json_schema(pairs, ref_template=_PREFIX + "{model}" + suffix)  # type: ignore[arg-type]
    defs = cast(dict[str, Any], top.get("$defs", {}))
    return {name + suffix: _fix_keywords(schema, bool(suffix)) for name, schema in defs.items()}


def component_schemas(resources: Iterable[Resource] = RESOURCES) -> dict[str, Any]:
    kinds = [r.kind for r in resources]
    schemas = _defs([*kinds, *_OUTPUT_MODELS], "serialization", "")
    schemas.update(_defs(kinds, "validation", "Input"))
    schemas.update(_defs(_INPUT_MODELS, "validation", ""))
    for name in (m.__name__ for m in _INPUT_MODELS):
        schemas[name] = _fix_keywords(schemas[name], True)
    for kind in kinds:
        base = schemas[kind.__name__ + "Input"]
        create = copy.deepcopy(base)
        create["required"] = [f for f in base.get("required", []) if f != "id"]
        create["title"] = f"{kind.__name__}Create"
        patch = copy.deepcopy(base)
        patch.pop("required", None)
        patch["title"] = f"{kind.__name__}Patch"
        for props in (patch["properties"],):
            for prop in props.values():
                prop.pop("default", None)
        schemas[f"{kind.__name__}Create"] = create
        schemas[f"{kind.__name__}Patch"] = patch
        schemas[f"{kind.__name__}List"] = {
            "title": f"{kind.__name__}List",
            "type": "object",
            "required": ["items", "invalid"],
            "properties": {
                "items": {"type": "array", "items": ref(kind.__name__)},
                "invalid": {"type": "array", "items": ref("InvalidEntity")},
            },
        }
    return schemas


def _drop_default_422(doc: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body on routes with parameters; ours never send it."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            schema = responses.get("422", {}).get("content", {}).get("application/json", {})
            if schema.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if not schemas:
        doc.get("components", {}).pop("schemas", None)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document served at ``/v1/openapi.json`` (cached on the app)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        _drop_default_422(doc)
        components = doc.setdefault("components", {})
        components.setdefault("schemas", {}).update(component_schemas())
        app.openapi_schema = doc
    return app.openapi_schema


def document() -> dict[str, Any]:
    """The document of an app built without services (for docs/openapi.json)."""
    from node.api.app import create_app
    from node.api.services import ApiServices

    return create_app(cast(ApiServices, None)).openapi()


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, sort_keys=True))
