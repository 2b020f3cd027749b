"""An agent instrumented with the OpenTelemetry SDK only, exporting over OTLP/HTTP.

Run by tests/tests/python_otel.rs against a real collector; the exporter's settings
come from the standard environment variables (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_COMPRESSION, OTEL_EXPORTER_OTLP_HEADERS). Prints the trace ids of
its runs, one a line.
"""

import json
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

resource = Resource.create(
    {
        "service.name": "py-agent",
        "service.version": "0.3.1",
        "deployment.environment.name": "test",
    }
)
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(tracer_provider)
tracer = trace.get_tracer("py.agent")

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
set_logger_provider(logger_provider)
log = logging.getLogger("py.agent")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
for i in range(runs):
    with tracer.start_as_current_span(
        "invoke_agent",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "py-researcher",
            "user.id": f"user-{i % 2}",
            "session.id": "conv-1",
            "tenant": "acme",
        },
    ) as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        print(trace_id, flush=True)
        # The current GenAI conventions: messages as JSON with parts.
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 80,
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": f"question {i}"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "an answer"}]}]
                ),
            },
        ):
            log.info("asked the model", extra={"attempt": 1})
        with tracer.start_as_current_span(
            "execute_tool search",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search",
                "gen_ai.tool.call.id": f"call-{i}",
            },
        ) as tool:
            if i == 1:
                try:
                    raise TimeoutError("search backend timed out")
                except TimeoutError as e:
                    tool.record_exception(e)
                    tool.set_status(Status(StatusCode.ERROR, str(e)))
                    log.warning("tool failed, answering without it")

# With "forms": one more trace whose LLM calls carry their prompt and response in each
# of the other forms instrumentors use (prints nothing).
if len(sys.argv) > 2 and sys.argv[2] == "forms":
    with tracer.start_as_current_span("forms", attributes={"tenant": "acme"}):
        # OpenInference, flattened messages.
        with tracer.start_as_current_span("oi-llm", attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-3-5-sonnet",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "oi question",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "oi answer",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 5,
        }):
            pass
        # OpenInference, input.value and output.value.
        with tracer.start_as_current_span("oi-values", attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "mistral-large",
            "input.value": "plain question",
            "output.value": "plain answer",
        }):
            pass
        # OpenLLMetry and the GenAI conventions before 1.28: gen_ai.prompt.N.*.
        with tracer.start_as_current_span("legacy-llm", attributes={
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-3.5-turbo",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "legacy question",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "legacy answer",
            "gen_ai.usage.prompt_tokens": 7,
            "gen_ai.usage.completion_tokens": 3,
        }):
            pass
        # GenAI events on the span.
        with tracer.start_as_current_span("event-llm", attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
        }) as span:
            span.add_event("gen_ai.user.message", {"content": "event question"})
            span.add_event("gen_ai.choice", {
                "index": 0, "finish_reason": "stop",
                "message": json.dumps({"content": "event answer"}),
            })

tracer_provider.shutdown()
logger_provider.shutdown()
