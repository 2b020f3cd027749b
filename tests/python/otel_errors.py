"""A service instrumented with the OpenTelemetry SDK only that fails: each checkout
charges a card that is declined (a ValueError recorded on the span as an `exception`
event with its stack trace), and the failure is logged with `log.exception` (an OTLP
log record with `exception.*` attributes).

Run by tests/tests/exceptions.rs against a real collector:
    python otel_errors.py VERSION COUNT
The exporter's settings come from OTEL_EXPORTER_OTLP_ENDPOINT.
"""

import logging
import sys

from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

version, count = sys.argv[1], int(sys.argv[2])
resource = Resource.create({"service.name": "py-shop", "service.version": version})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(tracer_provider)
tracer = trace.get_tracer("py.shop")

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
set_logger_provider(logger_provider)
log = logging.getLogger("py.shop")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))


def charge(card):
    raise ValueError(f"card {card} declined")


def checkout(i):
    with tracer.start_as_current_span("checkout", attributes={"user.id": f"u-{i % 3}"}) as span:
        try:
            charge(4000 + i)
        except ValueError as e:
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, str(e)))


def refund(i):
    try:
        raise KeyError(f"refund {i}")
    except KeyError:
        log.exception("refund lookup failed")


for i in range(count):
    checkout(i)
    refund(i)

tracer_provider.shutdown()
logger_provider.shutdown()
