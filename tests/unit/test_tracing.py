"""A reconcile is one span; each call to an outside system is a child span of it, and errors show."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from platform_operator import observability


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_outside_calls_are_children_of_the_reconcile_span(spans: InMemorySpanExporter):
    spans.clear()
    async with observability.reconciling("shop", "orders", "api") as result:
        with observability.outside_call("apiserver", "GET"):
            pass
        with pytest.raises(ConnectionError), observability.outside_call("rabbitmq", "PUT"):
            raise ConnectionError("broker down")
        result["result"] = "retry"
    finished = {s.name: s for s in spans.get_finished_spans()}
    parent = finished["reconcile"]
    assert parent.attributes["platform.result"] == "retry"
    assert parent.attributes["k8s.namespace.name"] == "shop"
    for name in ("apiserver GET", "rabbitmq PUT"):
        child = finished[name]
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
        assert child.context.trace_id == parent.context.trace_id
    assert finished["rabbitmq PUT"].status.status_code == trace.StatusCode.ERROR
    assert finished["apiserver GET"].status.status_code != trace.StatusCode.ERROR


async def test_log_lines_carry_the_trace_and_reconcile_ids(spans: InMemorySpanExporter):
    import json
    import logging

    formatter = observability.JsonFormatter()
    async with observability.reconciling("shop", "orders", "api"):
        record = logging.LogRecord("platform_operator", logging.INFO, __file__, 1, "hello", None, None)
        line = json.loads(formatter.format(record))
        span_ctx = trace.get_current_span().get_span_context()
    assert line["namespace"] == "shop" and line["object"] == "orders"
    assert line["trace_id"] == format(span_ctx.trace_id, "032x")
    assert len(line["reconcile_id"]) == 12
