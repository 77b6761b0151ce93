"""The OpenAPI document at /api/openapi.json: built from the route table, public, and a valid OpenAPI 3.1."""

from __future__ import annotations

import re

import schemathesis
from aiohttp import web
from schemathesis.core.result import Err

from tests.controller.conftest import Client, World, sign_in


def _api_routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical if route.resource else "")
        if path.startswith("/api/") and route.method != "HEAD":
            found.add((route.method.lower(), path))
    return found


async def test_every_api_route_is_documented_and_nothing_else(client: Client, app: web.Application) -> None:
    response = await client.get("/api/openapi.json")  # anonymous: the document is public
    assert response.status == 200
    doc = await response.json()
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert documented == _api_routes(app)
    assert ("get", "/api/openapi.json") in documented and ("post", "/api/bookings") in documented
    assert not any(not path.startswith("/api/") for _, path in documented)


async def test_the_document_describes_bodies_queries_security_and_errors(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    create = doc["paths"]["/api/bookings"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BookingIn"}
    assert {"title", "host_room", "start", "end"} <= set(doc["components"]["schemas"]["BookingIn"]["required"])
    assert create["security"] == [{"session": [], "csrf": []}, {"token": []}]
    assert create["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    listing = doc["paths"]["/api/rooms/{room_id}/bookings"]["get"]
    assert listing["security"] == [{"session": []}, {"token": []}]
    parameters = {(p["in"], p["name"]): p for p in listing["parameters"]}
    assert parameters["path", "room_id"]["schema"]["type"] == "integer"
    assert parameters["query", "from"]["required"] and parameters["query", "to"]["required"]
    rooms = next(p for p in doc["paths"]["/api/availability"]["get"]["parameters"] if p["name"] == "rooms")
    assert rooms["schema"]["type"] == "array" and rooms["explode"] is False
    assert doc["paths"]["/api/openapi.json"]["get"]["security"] == []
    assert doc["components"]["securitySchemes"]["session"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "ketnoi_session",
    }
    assert doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"


async def test_the_document_loads_as_openapi(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(doc)
    results = list(schema.get_all_operations())
    invalid = [str(result.err()) for result in results if isinstance(result, Err)]
    assert invalid == []
    assert len(results) == sum(len(item) for item in doc["paths"].values())


# Server errors found by the schemathesis run (tests/controller/test_schemathesis.py), each now a 4xx.


async def test_an_id_beyond_32_bits_is_no_such_item(client: Client, world: World) -> None:
    await sign_in(client, world.admin)
    for path in ("/api/agents/99999999999999999999", "/api/units/2147483648", "/api/bookings/9223372036854775808"):
        response = await client.get(path)
        assert response.status == 404, path
        assert await response.json() == {"error": "no such item"}
    assert (await client.get(f"/api/units/{world.school}")).status == 200


async def test_availability_hours_with_an_offset_are_a_422_not_a_500(client: Client, world: World) -> None:
    await sign_in(client, world.admin)
    response = await client.get("/api/availability?rooms=1&week=2026-01-05&day_start=08:00%2B07:00")
    assert response.status == 422
    assert "local times without an offset" in (await response.json())["error"]


async def test_a_listing_from_year_one_is_a_422_not_a_500(client: Client, world: World) -> None:
    await sign_in(client, world.admin)
    response = await client.get(
        f"/api/units/{world.school}/bookings?from=0001-01-01T00:00:00%2B07:00&to=0001-01-02T00:00:00%2B07:00"
    )
    assert response.status == 422
    assert "between the years" in (await response.json())["error"]
