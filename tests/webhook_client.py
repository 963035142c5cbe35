"""Talking to the webhook app as CallGuide would, for its unit and integration tests: serve it
on a loopback port for one scenario, POST events with a bearer token, GET a page."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

SINGLE = "application/cloudevents+json"
T = TypeVar("T")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def run(app: web.Application, scenario: Callable[[TestClient[Any, Any]], Awaitable[T]]) -> T:
    """Serve `app` on a free loopback port for the duration of `scenario(client)`."""

    async def main() -> T:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


async def post(client: TestClient[Any, Any], body: bytes, *, token: str | None, content_type: str = SINGLE) -> Reply:
    """POST /events; `token=None` sends no Authorization header."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # Over 1 MiB as a file object: aiohttp warns (ResourceWarning) that raw bytes that large block its loop.
    data = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    async with client.post("/events", data=data, headers=headers) as resp:
        return await _reply(resp)


async def get(client: TestClient[Any, Any], path: str) -> Reply:
    async with client.get(path) as resp:
        return await _reply(resp)


async def _reply(resp: Any) -> Reply:
    text = await resp.text()
    return Reply(resp.status, dict(resp.headers), json.loads(text) if text[:1] in "{[" else text)
