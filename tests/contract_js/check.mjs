// Holds what Loopgate publishes to its bindings with independent SDKs (run by
// tests/integration/test_published_bindings.py; `node check.mjs input.json`).
//
// input.json: {
//   "asyncapi": "docs/asyncapi.yaml",                        parsed with @asyncapi/parser; any error fails
//   "kafka": [{"name", "channel": "<address>", "key", "headers": {name: text}, "value": text}],
//   "http":  [{"name", "headers": {name: text}, "body": text}]
// }
// A Kafka message is held to its channel's message in the AsyncAPI document: its headers to the
// message's headers schema; if the message's content type is application/cloudevents+json, the
// CloudEvents SDK must read it (Kafka.toEvent, then the spec's validation) and its value must match
// the payload schema; otherwise the SDK must not take it for a CloudEvent. An HTTP request must be
// a structured-mode CloudEvent the SDK reads (HTTP.toEvent) and validates.
// Prints a JSON report on stdout; exits 1 when anything failed, 2 on bad input.

import { readFile } from "node:fs/promises";
import { Parser, fromFile } from "@asyncapi/parser";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { HTTP, Kafka } from "cloudevents";

const CLOUDEVENTS_JSON = "application/cloudevents+json";
const SEVERITY = ["error", "warning", "info", "hint"]; // DiagnosticSeverity 0..3

function summary(event) {
  const { specversion, id, source, type, subject, time, datacontenttype } = event;
  return { specversion, id, source, type, subject, time, datacontenttype };
}

function describe(err) {
  return err.errors?.length ? `${err.message} ${JSON.stringify(err.errors)}` : err.message;
}

function compile(schema) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  return ajv.compile(schema);
}

function schemaErrors(validate, value) {
  return validate(value) ? [] : validate.errors.map((e) => `${e.instancePath || "/"} ${e.message}`);
}

async function parseAsyncapi(path) {
  const { document, diagnostics } = await fromFile(new Parser(), path).parse();
  const found = diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path.join("."),
  }));
  const errors = found.filter((d) => d.severity === "error");
  return { document: errors.length ? undefined : document, report: { errors, others: found.filter((d) => d.severity !== "error") } };
}

function messageFor(document, address, value) {
  const channel = document.channels().all().find((c) => c.address() === address);
  if (!channel) throw new Error(`no channel with address ${address} in the AsyncAPI document`);
  const messages = channel.messages().all();
  if (messages.length === 1) return messages[0];
  let type;
  try {
    type = JSON.parse(value).type;
  } catch {
    type = undefined;
  }
  const named = messages.find((m) => m.name() === type);
  if (!named) throw new Error(`channel ${address} has no message named ${type}`);
  return named;
}

const compiled = new Map(); // one validator per (message, part): ajv refuses a schema $id twice

function validatorOf(message, part) {
  const key = `${message.id()}/${part}`;
  if (!compiled.has(key)) compiled.set(key, compile(message[part]().json()));
  return compiled.get(key);
}

function checkKafka(document, m) {
  const problems = [];
  const message = messageFor(document, m.channel, m.value);
  const contentType = message.contentType() ?? document.defaultContentType();
  if (message.hasHeaders()) problems.push(...schemaErrors(validatorOf(message, "headers"), m.headers).map((e) => `headers${e}`));
  let event;
  let sdkError;
  try {
    event = Kafka.toEvent({ key: m.key, value: m.value, headers: m.headers });
  } catch (err) {
    sdkError = err;
  }
  if (contentType?.startsWith(CLOUDEVENTS_JSON)) {
    if (sdkError) problems.push(`Kafka.toEvent: ${describe(sdkError)}`);
    else if (Array.isArray(event)) problems.push("Kafka.toEvent: read as a batch, not one CloudEvent");
    else {
      try {
        event.validate();
      } catch (err) {
        problems.push(`CloudEvent.validate: ${describe(err)}`);
      }
      const payload = message.payload();
      if (payload) problems.push(...schemaErrors(validatorOf(message, "payload"), JSON.parse(m.value)).map((e) => `payload${e}`));
    }
  } else if (!sdkError) {
    problems.push(`read as a CloudEvent, though ${m.channel} carries ${contentType}`);
  }
  return {
    name: m.name,
    contentType,
    ok: problems.length === 0,
    problems,
    sdk: sdkError ? sdkError.message : "CloudEvent",
    event: event && !Array.isArray(event) ? { ...summary(event), partitionkey: event.partitionkey } : null,
  };
}

function checkHttp(m) {
  const problems = [];
  const contentType = Object.entries(m.headers).find(([k]) => k.toLowerCase() === "content-type")?.[1];
  if (!contentType?.startsWith(CLOUDEVENTS_JSON)) problems.push(`content-type ${contentType}: not structured mode`);
  let event;
  try {
    event = HTTP.toEvent({ headers: m.headers, body: m.body });
    if (Array.isArray(event)) problems.push("HTTP.toEvent: read as a batch, not one CloudEvent");
    else event.validate();
  } catch (err) {
    problems.push(`HTTP.toEvent: ${describe(err)}`);
  }
  return {
    name: m.name,
    ok: problems.length === 0,
    problems,
    event: event && !Array.isArray(event) ? summary(event) : null,
  };
}

async function main() {
  if (process.argv.length !== 3) {
    console.error("usage: node check.mjs input.json");
    process.exit(2);
  }
  const input = JSON.parse(await readFile(process.argv[2], "utf8"));
  const report = { asyncapi: null, kafka: [], http: [] };
  let document;
  if (input.asyncapi) {
    const parsed = await parseAsyncapi(input.asyncapi);
    report.asyncapi = parsed.report;
    document = parsed.document;
  }
  for (const m of input.kafka ?? []) {
    if (!document) {
      report.kafka.push({ name: m.name, ok: false, problems: ["no valid AsyncAPI document to hold it to"] });
      continue;
    }
    try {
      report.kafka.push(checkKafka(document, m));
    } catch (err) {
      report.kafka.push({ name: m.name, ok: false, problems: [String(err.message ?? err)] });
    }
  }
  for (const m of input.http ?? []) report.http.push(checkHttp(m));
  const failed =
    (report.asyncapi?.errors.length ?? 0) > 0 || [...report.kafka, ...report.http].some((r) => !r.ok);
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  process.exit(failed ? 1 : 0);
}

await main();
