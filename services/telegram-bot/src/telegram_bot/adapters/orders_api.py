"""The one door to orders-api: HTTP with httpx, carrying the request id and the trace context
(platform_contract.telemetry.clients: a client span per call by opentelemetry-instrumentation-httpx)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from platform_contract.telemetry.clients import instrument_httpx
from telegram_bot.domain.orders import Draft, Order
from telegram_bot.observability import ORDERS_API_REQUESTS
from telegram_bot.service_layer.ordering import OrderRejected, OrdersUnavailable


class HttpOrdersApi:
    def __init__(self, base_url: str, *, request_id_header: str, timeout: float) -> None:
        self._client = instrument_httpx(
            httpx.AsyncClient(
                base_url=base_url,
                timeout=timeout,
                # Retries only failed connections, where nothing reached orders-api; a POST that may
                # have arrived is retried by the user, under the same Idempotency-Key.
                transport=httpx.AsyncHTTPTransport(retries=2),
            ),
            request_id_header=request_id_header,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _send(
        self, operation: str, method: str, url: str, extra_headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._client.request(method, url, headers=extra_headers, **kwargs)
        except httpx.HTTPError as exc:
            ORDERS_API_REQUESTS.labels(operation, "error").inc()
            raise OrdersUnavailable(f"orders-api unreachable: {type(exc).__name__}") from exc
        ORDERS_API_REQUESTS.labels(operation, str(response.status_code)).inc()
        if response.status_code >= 500:
            raise OrdersUnavailable(f"orders-api answered {response.status_code}")
        if response.status_code == 409:
            # the same Idempotency-Key is still being worked on (an earlier try): ask again later
            raise OrdersUnavailable("orders-api is still handling this order")
        return response

    async def user_for_telegram(self, telegram_id: int, name: str) -> str:
        response = await self._send("user", "PUT", f"/users/by-telegram/{int(telegram_id)}", json={"name": name})
        if response.status_code >= 400:
            raise OrderRejected(response.status_code, _detail(response))
        try:
            return str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OrdersUnavailable(f"orders-api answered {response.status_code} without a user") from exc

    async def create(self, user_id: str, draft: Draft, idempotency_key: str) -> Order:
        response = await self._send(
            "create",
            "POST",
            "/orders",
            extra_headers={"Idempotency-Key": idempotency_key},
            json={"user_id": user_id, "item": draft.item, "quantity": draft.quantity},
        )
        if response.status_code >= 400:
            raise OrderRejected(response.status_code, _detail(response))
        return _order(response)

    async def get(self, order_id: str) -> Order | None:
        # quoted whole: an id typed by a user must not walk to another path of orders-api
        response = await self._send("get", "GET", f"/orders/{quote(order_id, safe='')}")
        # 422: orders-api could not even read it as an order id, so no order has it
        if response.status_code in (404, 422):
            return None
        if response.status_code >= 400:
            raise OrderRejected(response.status_code, _detail(response))
        return _order(response)


def _order(response: httpx.Response) -> Order:
    try:
        return Order.from_api(response.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise OrdersUnavailable(f"orders-api answered {response.status_code} without an order") from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]
