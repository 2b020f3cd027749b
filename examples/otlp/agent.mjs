// An agent that sends its traces to logbook with the OpenTelemetry JS SDK alone
// (valid TypeScript too: save it as agent.ts).
// npm install @opentelemetry/api @opentelemetry/sdk-trace-node @opentelemetry/exporter-trace-otlp-http @opentelemetry/resources
// OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:7070 node agent.mjs
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "ts-agent" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
provider.register();
const tracer = trace.getTracer("my.agent");

// Run id, tenant, user and session are span attributes (children inherit them).
await tracer.startActiveSpan("invoke_agent", {
  attributes: {
    "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-bot",
    "logbook.run_id": "run-ts-1", "tenant": "acme", "user.id": "u-7", "session.id": "conv-9",
  },
}, async (root) => {
  const chat = tracer.startSpan("chat gpt-4o-mini", {
    attributes: {
      "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 60,
      "gen_ai.input.messages": JSON.stringify([{ role: "user", parts: [{ type: "text", content: "Reset my password" }] }]),
      "gen_ai.output.messages": JSON.stringify([{ role: "assistant", parts: [{ type: "text", content: "Done." }] }]),
    },
  });
  chat.end();
  root.end();
});

await provider.shutdown(); // flushes
