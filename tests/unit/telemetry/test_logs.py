"""Log records written inside a span carry its trace_id and span_id, in both formats."""

from __future__ import annotations

import json
import logging
import sys

from opentelemetry.trace import format_span_id, format_trace_id
from parley.server.logs import JsonFormatter, TextFormatter, TraceContextFilter
from parley.server.telemetry import Providers


def record(message: str) -> logging.LogRecord:
    made = logging.LogRecord("parley.test", logging.INFO, __file__, 1, message, None, None)
    assert TraceContextFilter().filter(made)
    return made


def test_records_inside_a_span_carry_its_ids(providers: Providers) -> None:
    tracer = providers.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        inside = record("inside")
    context = span.get_span_context()
    trace_id, span_id = format_trace_id(context.trace_id), format_span_id(context.span_id)

    line = TextFormatter().format(inside)
    assert line.endswith(f"INFO parley.test: inside trace_id={trace_id} span_id={span_id}")
    entry = json.loads(JsonFormatter().format(inside))
    assert entry["trace_id"] == trace_id
    assert entry["span_id"] == span_id
    assert entry["message"] == "inside"


def test_records_outside_any_span_have_no_ids() -> None:
    outside = record("outside")
    assert TextFormatter().format(outside).endswith("INFO parley.test: outside")
    entry = json.loads(JsonFormatter().format(outside))
    assert "trace_id" not in entry
    assert "span_id" not in entry


def test_ids_stay_on_the_first_line_of_a_traceback(providers: Providers) -> None:
    tracer = providers.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("work"):
        try:
            raise ValueError("boom")
        except ValueError:
            failed = record("failed")
            failed.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(failed).splitlines()
    assert "trace_id=" in first
    assert rest[-1] == "ValueError: boom"
