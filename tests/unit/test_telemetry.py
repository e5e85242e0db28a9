"""platform_contract.telemetry, the one telemetry of the services: the log format, request ids, the
trace context over message and HTTP headers, the HTTP metrics, and the request middleware with the
FastAPI and httpx instrumentation, run in-process (an ASGI app and a mock transport, no network)."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from platform_contract import telemetry
from platform_contract.telemetry.clients import instrument_httpx, instrument_redis
from platform_contract.telemetry.logs import JsonFormatter, configure_logging
from platform_contract.telemetry.metrics import HttpMetrics, new_registry
from platform_contract.telemetry.web import instrument_app

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider of the test's own (the global one is set once per process and not ours)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def rid() -> Iterator[str]:
    token = telemetry.request_id.set("req-7")
    yield "req-7"
    telemetry.request_id.reset(token)


def record(msg: str = "sent %s", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "svc.part", "levelno": logging.INFO, "levelname": "INFO", "msg": msg})
    rec.args = args or ("o-1",)
    rec.__dict__.update(extra)
    return rec


# --- request ids


@pytest.mark.parametrize("incoming", ["req-1", "a.b:c_d-9", "x" * 128])
def test_a_sane_request_id_is_kept(incoming: str) -> None:
    assert telemetry.accept_request_id(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "x" * 129, "two words", "line\nbreak", "ü"])
def test_anything_else_gets_a_new_request_id(incoming: str | None) -> None:
    new = telemetry.accept_request_id(incoming)
    assert new != incoming and len(new) == 32 and int(new, 16) >= 0
    assert telemetry.accept_request_id(incoming) != new  # a fresh one each time


# --- the log format


def test_a_log_line_is_one_json_object_with_the_fields_every_service_has(rid: str) -> None:
    line = json.loads(JsonFormatter("orders-api").format(record(order_id="o-1")))

    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "svc.part", "sent o-1")
    assert (line["service"], line["request_id"], line["order_id"]) == ("orders-api", rid, "o-1")
    assert "trace_id" not in line and "span_id" not in line  # no span in hand


def test_the_request_id_passed_with_the_record_wins_over_the_one_in_hand(rid: str) -> None:
    line = json.loads(JsonFormatter().format(record(request_id="from-message")))
    assert line["request_id"] == "from-message"
    assert "service" not in line


def test_a_log_line_inside_a_span_names_its_trace_and_span(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    with spans[0].get_tracer("t").start_as_current_span("work") as span:
        line = json.loads(JsonFormatter("s").format(record()))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


def test_the_exception_goes_along_and_uvicorns_coloured_copy_does_not() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record(color_message="\x1b[31msent\x1b[0m", status=500)
        rec.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter("s").format(rec))
    assert "ValueError: boom" in line["exception"] and line["status"] == 500
    assert "color_message" not in line


def test_configure_logging_sends_every_logger_through_one_json_handler() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("users-data", "debug", stream)
        logging.getLogger("uvicorn.error").debug("started")
        assert logging.getLogger("uvicorn.error").handlers == []
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["logger"], line["level"], line["service"]) == ("uvicorn.error", "DEBUG", "users-data")


# --- trace context over message headers


def test_message_headers_carry_the_trace_and_the_request_id(
    spans: tuple[TracerProvider, InMemorySpanExporter], rid: str
) -> None:
    with spans[0].get_tracer("t").start_as_current_span("publish") as span:
        headers = telemetry.inject({})
    assert headers[telemetry.MESSAGE_REQUEST_ID_HEADER] == rid
    sent = span.get_span_context()
    # What a consumer reads back, whatever the case of the header names and bytes or text values.
    received = trace.get_current_span(telemetry.extract({"TraceParent": headers["traceparent"]})).get_span_context()
    assert (received.trace_id, received.span_id, received.is_remote) == (sent.trace_id, sent.span_id, True)


def test_no_request_id_header_without_a_request_id() -> None:
    assert telemetry.MESSAGE_REQUEST_ID_HEADER not in telemetry.inject({})


# --- metrics


def test_http_metrics_count_by_method_route_and_status() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    metrics.observe("GET", "/users/{user_id}", 404, 0.02)
    metrics.observe("GET", "/users/{user_id}", 404, 0.03)

    labels = {"method": "GET", "route": "/users/{user_id}", "status": "404"}
    assert registry.get_sample_value("http_requests_total", labels) == 2
    assert registry.get_sample_value("http_request_duration_seconds_count", labels) == 2
    assert registry.get_sample_value("http_request_duration_seconds_sum", labels) == pytest.approx(0.05)


def test_a_new_registry_has_the_process_metrics() -> None:
    assert (new_registry().get_sample_value("process_open_fds") or 0) > 0


# --- the HTTP server side: FastAPI instrumentation and the request middleware


@pytest.fixture
def app(spans: tuple[TracerProvider, InMemorySpanExporter]) -> tuple[FastAPI, HttpMetrics]:
    api = FastAPI()
    metrics = HttpMetrics(CollectorRegistry())

    @api.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        logging.getLogger("svc.routes").info("looked up", extra={"item_id": item_id})
        return {"id": item_id, "request_id": telemetry.request_id.get()}

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("no luck")

    instrument_app(
        api, request_id_header="X-Request-ID", metrics=metrics, access_log="svc.access", tracer_provider=spans[0]
    )
    return api, metrics


async def call(api: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get(path, headers=headers)


async def test_a_request_continues_the_callers_trace_with_its_request_id(
    app: tuple[FastAPI, HttpMetrics], spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    api, metrics = app
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    logger = logging.getLogger("svc")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        response = await call(api, "/items/i-1", **{"X-Request-ID": "req-9", "traceparent": TRACEPARENT})
    finally:
        logger.removeHandler(handler)

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-9" and response.json()["request_id"] == "req-9"
    (server,) = [s for s in spans[1].get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert server.name == "GET /items/{item_id}"
    assert format(server.context.trace_id, "032x") == TRACE_ID and format(server.parent.span_id, "016x") == CALLER_SPAN
    assert server.attributes["request.id"] == "req-9"
    assert server.attributes["http.route"] == "/items/{item_id}"
    assert server.attributes["http.response.status_code"] == 200
    route_line, access = [json.loads(text) for text in stream.getvalue().splitlines()]
    for line in (route_line, access):
        assert (line["request_id"], line["trace_id"]) == ("req-9", TRACE_ID)
        assert line["span_id"] == format(server.context.span_id, "016x")
    assert (access["logger"], access["route"], access["status"], access["method"]) == (
        "svc.access",
        "/items/{item_id}",
        200,
        "GET",
    )
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert metrics.registry.get_sample_value("http_requests_total", labels) == 1


async def test_a_request_without_an_id_gets_one_and_an_unknown_route_is_counted_once(
    app: tuple[FastAPI, HttpMetrics],
) -> None:
    api, metrics = app
    first, second = await call(api, "/nowhere"), await call(api, "/nowhere", **{"X-Request-ID": "bad id"})

    assert first.status_code == second.status_code == 404
    assert len(first.headers["x-request-id"]) == 32 and second.headers["x-request-id"] != "bad id"
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    assert metrics.registry.get_sample_value("http_requests_total", labels) == 2


async def test_an_unhandled_error_answers_500_with_the_request_id_and_marks_the_span(
    app: tuple[FastAPI, HttpMetrics], spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    api, metrics = app
    response = await call(api, "/boom", **{"X-Request-ID": "req-500"})

    assert (response.status_code, response.json()) == (500, {"detail": "internal server error"})
    assert response.headers["x-request-id"] == "req-500"
    (server,) = [s for s in spans[1].get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert server.status.status_code is trace.StatusCode.ERROR
    assert any(event.name == "exception" for event in server.events)
    labels = {"method": "GET", "route": "/boom", "status": "500"}
    assert metrics.registry.get_sample_value("http_requests_total", labels) == 1


# --- the HTTP client side: httpx instrumentation and the request id


async def test_an_outgoing_call_carries_the_request_id_and_continues_the_trace(
    spans: tuple[TracerProvider, InMemorySpanExporter], rid: str
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = instrument_httpx(
        httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://orders-api"),
        request_id_header="X-Correlation-ID",
        tracer_provider=spans[0],
    )
    async with client:
        with spans[0].get_tracer("t").start_as_current_span("update") as parent:
            await client.get("/orders/o-1")

    (request,) = seen
    assert request.headers["x-correlation-id"] == rid
    _, trace_id, parent_span, _ = request.headers["traceparent"].split("-")
    (client_span,) = [s for s in spans[1].get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert int(trace_id, 16) == parent.get_span_context().trace_id
    assert int(parent_span, 16) == client_span.context.span_id  # the callee's spans hang under the call
    assert client_span.parent.span_id == parent.get_span_context().span_id
    assert client_span.attributes["http.response.status_code"] == 200


async def test_every_redis_command_is_a_client_span_of_the_work_in_hand(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    # Nothing listens on port 9: the command fails, and its span says so.
    client = instrument_redis(
        aioredis.Redis(port=9, socket_connect_timeout=0.5, retry_on_error=[]), tracer_provider=spans[0]
    )
    with spans[0].get_tracer("t").start_as_current_span("handle") as parent, pytest.raises(RedisConnectionError):
        await client.get("orders:o-1")
    await client.aclose()

    (command,) = [s for s in spans[1].get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert command.name == "GET" and command.parent.span_id == parent.get_span_context().span_id
    assert command.status.status_code is trace.StatusCode.ERROR
