"""The OpenAPI 3.1 document of the JSON API, built from the route table itself (`Routes.add`).

Every route under /api is described: method, path with its integer path parameters, the pydantic request model
(or raw media type) and query model recorded with the route, the security its policy asks for (a cookie session,
plus X-CSRF-Token for state-changing calls, or an `Authorization: Bearer` API token; nothing for public routes)
the JSON of a successful answer where the route names a model for it (`Routes.add(..., response=Model)`), and the
`{"error": "..."}` answers. The document holds no secrets: served to anyone at /api/openapi.json.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from controller import state
from controller.security import sessions
from controller.security.access import (
    CSRF_HEADER,
    MAX_ID,
    ROUTE_DOCS,
    SAFE_METHODS,
    Policy,
    RouteDoc,
    Routes,
    Scope,
    public,
)

OPENAPI_PATH = "/api/openapi.json"
_PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_REF = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_TEXT = {
    "400": "the request is malformed (body, query or JSON)",
    "401": "sign in first, or the API token is unknown, expired or revoked",
    "403": "not allowed: role, scope, or a missing CSRF token or wrong origin",
    "404": "no such item",
    "409": "conflicts with the current state (e.g. a booking clash)",
    "413": "the body is too large",
    "422": "a value is wrong; the message names the field and why",
    "503": "what the route relies on cannot answer now (e.g. the agent is offline or too slow)",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema in components (its $defs too); returns a reference to it."""
    schema = model.model_json_schema(by_alias=True, ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    parameters = []
    for name, field in schema.get("properties", {}).items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": field}
        if field.get("type") == "array":  # rooms=1,2,3
            parameter |= {"style": "form", "explode": False}
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return parameters


def _security(method: str, policy: Policy) -> list[dict[str, list[str]]]:
    if policy.roles is None:
        return []
    session: dict[str, list[str]] = {"session": []} if method in SAFE_METHODS else {"session": [], "csrf": []}
    return [session, {"token": []}]


def _operation(method: str, path: str, policy: Policy, doc: RouteDoc, components: dict[str, Any]) -> dict[str, Any]:
    names = _PARAMETER.findall(path)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}}
        for name in names
    ]
    if doc.query is not None:
        parameters += _query_parameters(doc.query, components)
    statuses = set()
    plain = _PARAMETER.sub(r"\1", path)
    operation: dict[str, Any] = {
        "operationId": method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", plain),
        "security": _security(method, policy),
    }
    if doc.summary:
        operation["summary"] = doc.summary
    if parameters:
        operation["parameters"] = parameters
    if isinstance(doc.body, str):
        operation["requestBody"] = {"required": True, "content": {doc.body: {"schema": {}}}}
        statuses |= {"400", "413", "422"}
    elif doc.body is not None:
        schema = _schema(doc.body, components)
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        statuses |= {"400", "413", "422"}
    if doc.query is not None:
        statuses |= {"400", "422"}
    if policy.roles is not None:
        statuses |= {"401", "403"}
    if names or policy.scope is not Scope.NONE:
        statuses.add("404")
    if method not in SAFE_METHODS:
        statuses.add("409")
    statuses |= {str(status) for status in doc.errors}
    responses: dict[str, Any] = {"2XX": {"description": "done"}}
    if doc.response is not None:
        responses["2XX"]["content"] = {"application/json": {"schema": _schema(doc.response, components)}}
    for status in sorted(statuses):
        responses[status] = {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
    operation["responses"] = responses
    return operation


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document for every /api route of `app`."""
    components: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string", "description": "what is wrong, in words"}},
            "required": ["error"],
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    policies = app[state.POLICIES]
    docs = app.get(ROUTE_DOCS, {})
    for route in app.router.routes():
        if route.resource is None or route.method == "HEAD":
            continue
        path = _PARAMETER.sub(r"{\1}", route.resource.canonical)
        if not path.startswith("/api/"):
            continue
        doc = docs.get(route, RouteDoc())
        operation = _operation(route.method, route.resource.canonical, policies[route], doc, components)
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ketnoi controller API",
            "version": "1",
            "description": 'Errors are {"error": "..."} with a 4xx status.',
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": sessions.cookie_name(app[state.CONFIG])},
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": CSRF_HEADER,
                    "description": "the session's token from GET /api/session, for state-changing calls",
                },
                "token": {"type": "http", "scheme": "bearer", "description": "an API token from POST /api/tokens"},
            },
        },
    }


async def openapi_json(request: web.Request) -> web.StreamResponse:
    """This document."""
    return web.json_response(document(request.app))


def add_routes(routes: Routes) -> None:
    routes.add("GET", OPENAPI_PATH, openapi_json, public(), summary="The OpenAPI document of this API")
