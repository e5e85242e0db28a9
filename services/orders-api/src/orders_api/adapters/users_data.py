"""users-data over HTTP: the only way a business service learns about users (it holds no database
credentials). The client it is given carries the request id and the trace context along
(platform_contract.telemetry.clients), so one request can be followed across both services."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from orders_api.domain.model import Customer, TelegramAccount
from orders_api.service_layer.ports import UserRefused, UsersDataUnavailable


class UsersDataClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = client

    async def _send(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            return await self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise UsersDataUnavailable(f"users-data unreachable: {type(exc).__name__}: {exc}") from exc

    async def exists(self, user_id: str) -> bool:
        path = f"/users/{quote(user_id, safe='')}"
        resp = await self._send("GET", path)
        if resp.status_code == httpx.codes.OK:
            return True
        # 422: users-data refused the id's shape (e.g. it numbers its users), so no such user either.
        if resp.status_code in (httpx.codes.NOT_FOUND, httpx.codes.UNPROCESSABLE_ENTITY):
            return False
        raise UsersDataUnavailable(f"users-data answered HTTP {resp.status_code} to GET {path}")

    async def for_telegram(self, telegram_id: int, account: TelegramAccount) -> tuple[Customer, bool]:
        path = f"/users/by-telegram/{telegram_id}"
        resp = await self._send("PUT", path, json=account.model_dump())
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
