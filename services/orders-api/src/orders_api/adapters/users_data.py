"""users-data over HTTP: the only way a business service learns about users (it holds no database
credentials). The request id and the trace context go along, so one request can be followed
across both services."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from orders_api.domain.model import Customer, TelegramAccount
from orders_api.service_layer.ports import UserRefused, UsersDataUnavailable
from platform_contract import telemetry

tracer = trace.get_tracer(__name__)


class UsersDataClient:
    def __init__(self, client: httpx.AsyncClient, request_id_header: str) -> None:
        self._http = client
        self._request_id_header = request_id_header

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        telemetry.inject(headers)
        # telemetry names it as in messages; over HTTP it goes under REQUEST_ID_HEADER.
        rid = headers.pop(telemetry.MESSAGE_REQUEST_ID_HEADER, "")
        if rid:
            headers[self._request_id_header] = rid
        return headers

    async def _send(self, method: str, route: str, path: str, json: Any = None) -> httpx.Response:
        with tracer.start_as_current_span(f"{method} users-data {route}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.full", f"{self._http.base_url}{path.lstrip('/')}")
            try:
                # headers made inside the span, so that users-data's spans hang under this one
                resp = await self._http.request(method, path, headers=self._headers(), json=json)
            except httpx.HTTPError as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise UsersDataUnavailable(f"users-data unreachable: {type(exc).__name__}: {exc}") from exc
            span.set_attribute("http.response.status_code", resp.status_code)
        return resp

    async def exists(self, user_id: str) -> bool:
        path = f"/users/{quote(user_id, safe='')}"
        resp = await self._send("GET", "/users/{id}", path)
        if resp.status_code == httpx.codes.OK:
            return True
        # 422: users-data refused the id's shape (e.g. it numbers its users), so no such user either.
        if resp.status_code in (httpx.codes.NOT_FOUND, httpx.codes.UNPROCESSABLE_ENTITY):
            return False
        raise UsersDataUnavailable(f"users-data answered HTTP {resp.status_code} to GET {path}")

    async def for_telegram(self, telegram_id: int, account: TelegramAccount) -> tuple[Customer, bool]:
        path = f"/users/by-telegram/{telegram_id}"
        resp = await self._send("PUT", "/users/by-telegram/{telegram_id}", path, json=account.model_dump())
        if resp.status_code in (httpx.codes.OK, httpx.codes.CREATED):
            try:
                return Customer.model_validate(resp.json()), resp.status_code == httpx.codes.CREATED
            except (ValueError, ValidationError) as exc:
                raise UsersDataUnavailable(f"users-data answered PUT {path} without a user: {exc}") from exc
        if resp.status_code == httpx.codes.UNPROCESSABLE_ENTITY:
            raise UserRefused(f"users-data refused the user: {_detail(resp)}")
        raise UsersDataUnavailable(f"users-data answered HTTP {resp.status_code} to PUT {path}")


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail", resp.text)
    except (ValueError, AttributeError):
        detail = resp.text
    return str(detail)[:300]
