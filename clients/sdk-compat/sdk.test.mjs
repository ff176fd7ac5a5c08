// The official Vapi server SDK (@vapi-ai/server-sdk, pinned in package.json)
// against ngx_http_callhq_module: the SDK is pointed at the module with its
// baseUrl option and nothing else changes. scripts/test-clients.sh starts
// PostgreSQL, the mock model (t/mock/mock_model.py) and nginx, and exports
// CALLHQ_URL and CALLHQ_KEY.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { VapiClient, VapiError } from "@vapi-ai/server-sdk";

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with scripts/test-clients.sh`);
  return v;
}

const BASE_URL = env("CALLHQ_URL");
const client = new VapiClient({ baseUrl: BASE_URL, token: env("CALLHQ_KEY") });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** An assistant of the mock model: "recall" remembers "my name is X" and
 *  answers "What is my name?" with "Your name is X." */
function assistant(extra = {}) {
  return client.assistants.create({
    name: "sdk-compat",
    model: { provider: "openai", model: "recall",
             messages: [{ role: "system", content: "You are a test assistant." }] },
    ...extra,
  });
}

/** The VapiError a call throws (fails if it does not throw one). */
async function vapiError(promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof VapiError) return e;
    throw e;
  }
  assert.fail("expected a VapiError");
}

/** Server-sent events in a body the SDK hands back whole: [{event, data}]. */
function sse(text) {
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) events.push({ event, data: JSON.parse(data.join("\n")) });
  }
  return events;
}

/**
 * The SDK has no streaming mode: chats.create({stream: true}) and
 * chats.createResponse() read the whole text/event-stream body, fail to
 * parse it as JSON, and resolve (not reject) with
 * {ok: false, error: {reason: "non-json", statusCode: 200, rawBody}}.
 * That is the SDK's own behaviour against any server; the events are in rawBody.
 */
function streamedBody(data) {
  assert.equal(data?.ok, false, "the SDK wraps a streamed answer");
  assert.equal(data.error.reason, "non-json");
  assert.equal(data.error.statusCode, 200);
  return data.error.rawBody;
}

describe("@vapi-ai/server-sdk: assistant, session, chats, end to end", () => {
  let a, s, c1, c2;

  it("creates an assistant (assistants.create/get/list/update)", async () => {
    a = await assistant();
    assert.match(a.id, UUID);
    assert.match(a.orgId, UUID);
    assert.match(a.createdAt, ISO);
    assert.equal(a.name, "sdk-compat");
    assert.equal(a.model.provider, "openai");
    assert.equal(a.model.model, "recall");
    assert.deepEqual(a.model.messages, [{ role: "system", content: "You are a test assistant." }]);

    assert.equal((await client.assistants.get({ id: a.id })).id, a.id);
    const all = await client.assistants.list({ limit: 1000 });
    assert.ok(Array.isArray(all), "GET /assistant is a plain array");
    assert.ok(all.some((x) => x.id === a.id));
    const renamed = await client.assistants.update({ id: a.id, name: "sdk-compat-2" });
    assert.equal(renamed.name, "sdk-compat-2");
    assert.equal(renamed.model.model, "recall", "PATCH keeps what it was not given");
  });

  it("creates a session for it (sessions.create)", async () => {
    s = await client.sessions.create({ assistantId: a.id, name: "sdk session" });
    assert.match(s.id, UUID);
    assert.equal(s.assistantId, a.id);
    assert.equal(s.name, "sdk session");
    assert.equal(s.status, "active");
    assert.equal(s.expirationSeconds, 86400);
    assert.deepEqual(s.messages, []);
    assert.match(s.createdAt, ISO);
    assert.match(s.updatedAt, ISO);
  });

  it("chats twice on the session, the second answer knows the first (chats.create)", async () => {
    c1 = await client.chats.create({ sessionId: s.id, input: "My name is Alice." });
    assert.match(c1.id, UUID);
    assert.equal(c1.sessionId, s.id);
    assert.equal(c1.assistantId, a.id);
    assert.equal(c1.input, "My name is Alice.");
    assert.equal(c1.output.length, 1);
    assert.equal(c1.output[0].role, "assistant");
    assert.match(c1.output[0].content, /Alice/);

    c2 = await client.chats.create({ sessionId: s.id, input: "What is my name?" });
    assert.equal(c2.sessionId, s.id);
    assert.equal(c2.output[0].content, "Your name is Alice.");
    // messages: the context the model saw (system prompt, history, input)
    assert.deepEqual(c2.messages.map((m) => m.role), ["system", "user", "assistant", "user"]);
    assert.equal(c2.messages[3].content, "What is my name?");
  });

  it("lists sessions and finds it (sessions.list, paging and filters)", async () => {
    const page = await client.sessions.list();
    assert.ok(Array.isArray(page.results));
    assert.ok(page.results.some((x) => x.id === s.id));
    assert.equal(page.metadata.currentPage, 1);
    assert.equal(page.metadata.itemsPerPage, 100);
    assert.equal(typeof page.metadata.totalItems, "number");

    const mine = await client.sessions.list({
      assistantId: a.id, limit: 1, page: 1, sortOrder: "ASC", sortBy: "createdAt",
      createdAtGe: s.createdAt, idAny: s.id,
    });
    assert.deepEqual(mine.results.map((x) => x.id), [s.id]);
    assert.equal(mine.results[0].messages, undefined, "list rows leave messages out");
    assert.deepEqual(mine.metadata, {
      itemsPerPage: 1, totalItems: 1, currentPage: 1, totalPages: 1,
      hasNextPage: false, sortOrder: "ASC",
    });
    assert.deepEqual((await client.sessions.list({ id: s.id, name: "sdk session" }))
                       .results.map((x) => x.id), [s.id]);
    assert.deepEqual((await client.sessions.list({ assistantIdAny: a.id, page: 2 })).results, []);
  });

  it("updates its name (sessions.update)", async () => {
    const u = await client.sessions.update({ id: s.id, name: "renamed by sdk" });
    assert.equal(u.id, s.id);
    assert.equal(u.name, "renamed by sdk");
    assert.equal(u.status, "active");
    assert.ok(u.updatedAt >= s.updatedAt);
  });

  it("reads it back with its history, 4 messages in order (sessions.get)", async () => {
    const g = await client.sessions.get({ id: s.id });
    assert.equal(g.name, "renamed by sdk");
    assert.equal(g.assistantId, a.id);
    assert.deepEqual(g.messages, [
      { role: "user", content: "My name is Alice." },
      { role: "assistant", content: c1.output[0].content },
      { role: "user", content: "What is my name?" },
      { role: "assistant", content: "Your name is Alice." },
    ]);
  });

  it("lists its chats (chats.list) and reads one (chats.get)", async () => {
    const l = await client.chats.list({ sessionId: s.id, sortOrder: "ASC" });
    assert.deepEqual(l.results.map((x) => x.id), [c1.id, c2.id]);
    assert.equal(l.metadata.totalItems, 2);
    assert.equal(l.results[1].output[0].content, "Your name is Alice.");

    const byAssistant = await client.chats.list({ assistantId: a.id, limit: 1 });
    assert.deepEqual(byAssistant.results.map((x) => x.id), [c2.id], "newest first");
    assert.equal(byAssistant.metadata.hasNextPage, true);

    const g = await client.chats.get({ id: c1.id });
    assert.equal(g.id, c1.id);
    assert.deepEqual(g.output, c1.output);
  });

  it("streams a chat (chats.create with stream: true)", async () => {
    const { data, rawResponse } = await client.chats
      .create({ sessionId: s.id, input: "What is my name?", stream: true })
      .withRawResponse();
    assert.equal(rawResponse.status, 200);
    assert.match(rawResponse.headers.get("content-type"), /^text\/event-stream/);

    const events = sse(streamedBody(data));
    assert.ok(events.length > 1, "the reply comes in several deltas");
    // each event is the SDK's CreateChatStreamResponse: {id, sessionId, path, delta}
    for (const { event, data: e } of events) {
      assert.equal(event, "message");
      assert.match(e.id, UUID);
      assert.equal(e.sessionId, s.id);
      assert.equal(e.path, "chat.output[0].content");
      assert.equal(typeof e.delta, "string");
    }
    assert.equal(new Set(events.map((e) => e.data.id)).size, 1);
    assert.equal(events.map((e) => e.data.delta).join(""), "Your name is Alice.");

    // recorded once, as a whole chat of the session
    const chat = await client.chats.get({ id: events[0].data.id });
    assert.equal(chat.sessionId, s.id);
    assert.deepEqual(chat.output, [{ role: "assistant", content: "Your name is Alice." }]);
    assert.equal((await client.sessions.get({ id: s.id })).messages.length, 6);
  });

  it("answers in the OpenAI Responses shape (chats.createResponse)", async () => {
    const r = await client.chats.createResponse({
      sessionId: s.id, input: "What is my name?", stream: false });
    assert.equal(r.object, "response");
    assert.match(r.id, /^resp_/);
    assert.equal(typeof r.created_at, "number");
    assert.equal(r.status, "completed");
    assert.equal(r.output[0].type, "message");
    assert.equal(r.output[0].role, "assistant");
    assert.deepEqual(r.output[0].content,
                     [{ type: "output_text", text: "Your name is Alice.", annotations: [] }]);

    // stream defaults to true here, as in the original
    const events = sse(streamedBody(
      await client.chats.createResponse({ sessionId: s.id, input: "What is my name?" })));
    const types = events.map((e) => e.data.type);
    assert.equal(types[0], "response.created");
    assert.ok(types.includes("response.output_text.delta"));
    assert.deepEqual(types.slice(-2), ["response.output_text.done", "response.completed"]);
    for (const e of events) assert.equal(e.event, e.data.type);
    const deltas = events.filter((e) => e.data.type === "response.output_text.delta");
    for (const { data: d } of deltas) {
      assert.equal(d.output_index, 0);
      assert.equal(d.content_index, 0);
      assert.equal(typeof d.item_id, "string");
    }
    assert.equal(deltas.map((e) => e.data.delta).join(""), "Your name is Alice.");
    const done = events.at(-1).data.response;
    assert.equal(done.status, "completed");
    assert.equal(done.output[0].content[0].text, "Your name is Alice.");
  });

  it("deletes the session (sessions.delete), then gets 404", async () => {
    const d = await client.sessions.delete({ id: s.id });
    assert.equal(d.id, s.id);
    assert.equal(d.name, "renamed by sdk");

    const e = await vapiError(client.sessions.get({ id: s.id }));
    assert.equal(e.statusCode, 404);
    assert.equal(e.body.statusCode, 404);
    assert.equal(e.body.error, "Not Found");
    assert.match(e.body.message, new RegExp(s.id));

    assert.equal((await vapiError(client.sessions.delete({ id: s.id }))).statusCode, 404);
    assert.equal((await vapiError(client.sessions.update({ id: s.id, name: "x" }))).statusCode, 404);
    assert.equal((await vapiError(client.chats.create({ sessionId: s.id, input: "hi" }))).statusCode, 404);
    // its chats went with it
    assert.deepEqual((await client.chats.list({ sessionId: s.id })).results, []);
    assert.equal((await vapiError(client.chats.get({ id: c1.id }))).statusCode, 404);
  });

  it("deletes the assistant (assistants.delete)", async () => {
    assert.equal((await client.assistants.delete({ id: a.id })).id, a.id);
    assert.equal((await vapiError(client.assistants.get({ id: a.id }))).statusCode, 404);
  });
});

describe("@vapi-ai/server-sdk: the other ways to chat and to fail", () => {
  it("chats without a session: assistantId, then previousChatId; chats.delete", async () => {
    const a = await assistant();
    const first = await client.chats.create({ assistantId: a.id, input: "My name is Bob.",
                                              name: "first" });
    assert.equal(first.sessionId, undefined);
    assert.equal(first.name, "first");
    const next = await client.chats.create({ previousChatId: first.id, input: "What is my name?" });
    assert.equal(next.previousChatId, first.id);
    assert.equal(next.output[0].content, "Your name is Bob.");
    assert.deepEqual((await client.chats.list({ previousChatId: first.id })).results.map((x) => x.id),
                     [next.id]);

    assert.equal((await client.chats.delete({ id: next.id })).id, next.id);
    assert.equal((await vapiError(client.chats.get({ id: next.id }))).statusCode, 404);
    await client.assistants.delete({ id: a.id });
  });

  it("a session with an inline assistant and seed messages", async () => {
    const s = await client.sessions.create({
      assistant: { model: { provider: "openai", model: "recall" } },
      messages: [{ role: "user", content: "My name is Carol." },
                 { role: "assistant", content: "Hello Carol." }],
    });
    assert.equal(s.messages.length, 2);
    const c = await client.chats.create({ sessionId: s.id, input: [{ role: "user", content: "What is my name?" }] });
    assert.equal(c.output[0].content, "Your name is Carol.");
    await client.sessions.delete({ id: s.id });
  });

  it("sessions.create() with no arguments, as the SDK's own example", async () => {
    const s = await client.sessions.create();
    assert.match(s.id, UUID);
    assert.equal(s.status, "active");
    await client.sessions.delete({ id: s.id });
  });

  it("a completed session refuses chats with 410", async () => {
    const a = await assistant();
    const s = await client.sessions.create({ assistantId: a.id });
    assert.equal((await client.sessions.update({ id: s.id, status: "completed" })).status, "completed");
    const e = await vapiError(client.chats.create({ sessionId: s.id, input: "hi" }));
    assert.equal(e.statusCode, 410);
    await client.sessions.delete({ id: s.id });
    await client.assistants.delete({ id: a.id });
  });

  it("a wrong key is a VapiError 401; a bad field a VapiError 400", async () => {
    const bad = new VapiClient({ baseUrl: BASE_URL, token: "cq_wrong" });
    const e = await vapiError(bad.sessions.list());
    assert.equal(e.statusCode, 401);
    assert.equal(e.body.statusCode, 401);

    const long = await vapiError(client.sessions.create({ name: "x".repeat(41) }));
    assert.equal(long.statusCode, 400);
    assert.match(long.body.message, /name/);
  });
});

// More of what the SDK's request types offer (sql/005_sdk_compat.sql).
describe("@vapi-ai/server-sdk: the rest of the SDK's fields and parameters", () => {
  it("chats.list filters by id and idAny", async () => {
    const a = await assistant();
    const c = await client.chats.create({ assistantId: a.id, input: "hi" });
    try {
      assert.deepEqual((await client.chats.list({ id: c.id })).results.map((x) => x.id), [c.id]);
      assert.deepEqual((await client.chats.list({ idAny: c.id })).results.map((x) => x.id), [c.id]);
      assert.deepEqual((await client.chats.list({ id: "b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10" })).results, []);
    } finally {
      await client.assistants.delete({ id: a.id });
    }
  });

  it("sessions.list filters by the customer's number, email and externalId", async () => {
    const s = await client.sessions.create({
      customer: { number: "+15550100", email: "dora@example.com", externalId: "dora-1" } });
    try {
      for (const q of [{ number: "+15550100" }, { email: "dora@example.com" },
                       { externalId: "dora-1" }, { customerNumberAny: "+15550100" }]) {
        assert.deepEqual((await client.sessions.list(q)).results.map((x) => x.id), [s.id],
                         JSON.stringify(q));
      }
      for (const q of [{ number: "+15550101" }, { email: "DORA@example.com" }, { externalId: "dora" }]) {
        assert.deepEqual((await client.sessions.list(q)).results, [], JSON.stringify(q));
      }
    } finally {
      await client.sessions.delete({ id: s.id });
    }
  });

  // squads, workflows and SIP do not exist in the module: their parameters
  // are accepted and ignored; sortBy duration and cost sort as createdAt;
  // phone numbers filter (the sessions of SMS customers)
  it("sessions.list and chats.list take every query parameter of the SDK", async () => {
    const s1 = await client.sessions.create({ name: "sdk-params" });
    const s2 = await client.sessions.create({ name: "sdk-params" });
    for (const q of [{ phoneNumberId: "b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10" },
                     { phoneNumberIdAny: ["b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10"] }]) {
      const page = await client.sessions.list({ name: "sdk-params", ...q });
      assert.deepEqual(page.results, [], JSON.stringify(q));
    }
    for (const q of [{ squadId: "b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10" },
                     { workflowId: "b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10" },
                     { sipUri: "sip:a@example.com" }, { extension: "12" },
                     { numberE164CheckEnabled: false }, { sortBy: "cost" }, { sortBy: "duration" }]) {
      const page = await client.sessions.list({ name: "sdk-params", sortOrder: "ASC", ...q });
      assert.deepEqual(page.results.map((x) => x.id), [s1.id, s2.id], JSON.stringify(q));
    }
    await client.sessions.list({ assistantOverrides: "{}", squadOverrides: "{}" });
    assert.ok(Array.isArray((await client.chats.list({
      squadId: "b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10" })).results));
    assert.ok(Array.isArray((await client.chats.list({ sortBy: "duration" })).results));
    assert.ok(Array.isArray((await client.chats.list({ sortBy: "cost" })).results));
    await client.sessions.delete({ id: s1.id });
    await client.sessions.delete({ id: s2.id });
  });

  it("assistantOverrides.variableValues fill {{variables}} of the system prompt", async () => {
    const a = await client.assistants.create({
      model: { provider: "openai", model: "recall",
               messages: [{ role: "system", content: "The customer is {{who}}." }] } });
    try {
      const c = await client.chats.create({ assistantId: a.id, input: "hi",
                                            assistantOverrides: { variableValues: { who: "Erin" } } });
      assert.equal(c.messages[0].content, "The customer is Erin.");
      const s = await client.sessions.create({ assistantId: a.id,
                                               assistantOverrides: { variableValues: { who: "Finn" } } });
      const c2 = await client.chats.create({ sessionId: s.id, input: "hi" });
      assert.equal(c2.messages[0].content, "The customer is Finn.");
      assert.deepEqual(s.assistantOverrides, { variableValues: { who: "Finn" } });
      // the chat's own variables go over the session's
      const c3 = await client.chats.create({ sessionId: s.id, input: "hi",
                                             assistantOverrides: { variableValues: { who: "Gil" } } });
      assert.equal(c3.messages[0].content, "The customer is Gil.");
      // the assistant itself is unchanged
      assert.equal((await client.assistants.get({ id: a.id })).model.messages[0].content,
                   "The customer is {{who}}.");
      await client.sessions.delete({ id: s.id });
    } finally {
      await client.assistants.delete({ id: a.id });
    }
  });

  it("messages of the SDK's OpenAI-style types: developer role, name, metadata, tool calls", async () => {
    const s = await client.sessions.create({
      assistant: { model: { provider: "openai", model: "recall",
                            messages: [{ role: "developer", content: "Be kind.", name: "dev" }] } },
      messages: [
      { role: "developer", content: "Be brief." },
      { role: "user", content: "hi", name: "gus", metadata: { k: 1 } },
      { role: "assistant", tool_calls: [{ id: "call_1", type: "function",
                                          function: { name: "f", arguments: "{}" } }] },
      { role: "tool", content: "42", tool_call_id: "call_1" },
    ] });
    try {
      // stored as {role, content}, developer as developer, an assistant's
      // tool calls (content null) and a tool's tool_call_id kept
      assert.deepEqual(s.messages, [
        { role: "developer", content: "Be brief." },
        { role: "user", content: "hi" },
        { role: "assistant", content: null,
          tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }] },
        { role: "tool", content: "42", tool_call_id: "call_1" },
      ]);
      assert.deepEqual(s.assistant.model.messages, [{ role: "developer", content: "Be kind." }]);
      // upstream, developer messages are system messages
      const c = await client.chats.create({ sessionId: s.id, input: [
        { role: "developer", content: "Be terse." }, { role: "user", content: "My name is Ivy." }] });
      assert.deepEqual(c.messages.map((m) => m.role),
                       ["system", "system", "user", "assistant", "tool", "system", "user"]);
      assert.equal(c.messages[1].content, "Be brief.");
      assert.deepEqual((await client.sessions.get({ id: s.id })).messages.slice(4).map((m) => m.role),
                       ["developer", "user", "assistant"]);
    } finally {
      await client.sessions.delete({ id: s.id });
    }
  });

  // The SDK types UserMessage/SystemMessage as call-log entries {role, message,
  // time, endTime, secondsFromStart}: message stands for content, the rest is ignored.
  it("user and system messages in the shape the SDK's types give them", async () => {
    const s = await client.sessions.create({ messages: [
      { role: "user", message: "My name is Hana.", time: 1, endTime: 1, secondsFromStart: 0 },
    ] });
    try {
      assert.deepEqual((await client.sessions.get({ id: s.id })).messages,
                       [{ role: "user", content: "My name is Hana." }]);
    } finally {
      await client.sessions.delete({ id: s.id });
    }
  });

  // Members the module has no use for are accepted and not stored.
  it("an assistant with more of the SDK's CreateAssistantDto", async () => {
    const a = await client.assistants.create({
      name: "full",
      firstMessage: "Hi!",
      firstMessageMode: "assistant-speaks-first",
      maxDurationSeconds: 600,
      voice: { provider: "vapi", voiceId: "Elliot" },
      transcriber: { provider: "deepgram", model: "nova-2" },
      model: { provider: "openai", model: "recall", toolIds: [], emotionRecognitionEnabled: false },
      serverMessages: ["end-of-call-report", "status-update", "chat.created"],
      server: { url: "http://127.0.0.1:9/hook", timeoutSeconds: 20,
                backoffPlan: { type: "exponential", maxRetries: 3, baseDelaySeconds: 1 } },
    });
    try {
      assert.equal(a.name, "full");
      assert.equal(a.firstMessage, "Hi!");
      assert.equal(a.voice, undefined);
      assert.equal(a.transcriber, undefined);
      assert.deepEqual(a.model, { provider: "openai", model: "recall" });
      assert.deepEqual(a.server, { url: "http://127.0.0.1:9/hook", timeoutSeconds: 20 });
      assert.deepEqual(a.serverMessages, ["end-of-call-report", "status-update", "chat.created"]);

      const u = await client.assistants.update({ id: a.id, maxDurationSeconds: 60,
                                                 endCallPhrases: ["bye"],
                                                 model: { provider: "openai", model: "recall",
                                                          tools: [], numFastTurns: 1 } });
      assert.deepEqual(u.model, { provider: "openai", model: "recall", tools: [] });

      // and as an inline assistant of a session and of a chat
      const inline = { voice: { provider: "vapi", voiceId: "Elliot" }, maxDurationSeconds: 60,
                       model: { provider: "openai", model: "recall", toolIds: [] } };
      const s = await client.sessions.create({ assistant: inline });
      assert.deepEqual(s.assistant, { model: { provider: "openai", model: "recall" } });
      await client.sessions.delete({ id: s.id });
      const c = await client.chats.create({ assistant: inline, input: "My name is Jo." });
      assert.deepEqual(c.assistant, { model: { provider: "openai", model: "recall" } });
      await client.chats.delete({ id: c.id });
    } finally {
      await client.assistants.delete({ id: a.id });
    }
  });
});

// phoneNumbers: the SDK's Twilio shapes (CreateTwilioPhoneNumberDto,
// UpdateTwilioPhoneNumberDto, TwilioPhoneNumber); the auth token is
// write-only, and what the module has not (calls, squads, API keys) is a
// 400 naming the member.
describe("@vapi-ai/server-sdk: phone numbers", () => {
  const TOKEN = "tok_sdk_" + Math.random().toString(36).slice(2);
  const number = "+1555" + String(Math.floor(Math.random() * 1e7)).padStart(7, "0");

  /** Fails if the auth token is anywhere in an answer. */
  function noToken(x) {
    assert.ok(!JSON.stringify(x).includes(TOKEN), "the auth token is never shown");
  }

  it("create, list, get, update, delete", async () => {
    const a = await assistant();
    const p = await client.phoneNumbers.create({
      provider: "twilio", number, twilioAccountSid: "AC_sdk", twilioAuthToken: TOKEN,
      assistantId: a.id, name: "sdk number", smsEnabled: true,
    });
    try {
      noToken(p);
      assert.match(p.id, UUID);
      assert.match(p.orgId, UUID);
      assert.equal(p.orgId, a.orgId);
      assert.equal(p.provider, "twilio");
      assert.equal(p.number, number);
      assert.equal(p.twilioAccountSid, "AC_sdk");
      assert.equal(p.twilioAuthToken, undefined);
      assert.equal(p.assistantId, a.id);
      assert.equal(p.name, "sdk number");
      assert.equal(p.smsEnabled, true);
      assert.equal(p.status, "active");
      assert.match(p.createdAt, ISO);
      assert.match(p.updatedAt, ISO);

      const all = await client.phoneNumbers.list({ limit: 1000, createdAtGe: p.createdAt });
      assert.ok(Array.isArray(all), "GET /phone-number is a plain array");
      assert.deepEqual(all.filter((x) => x.id === p.id), [p]);
      noToken(all);

      assert.deepEqual(await client.phoneNumbers.get({ id: p.id }), p);

      const u = await client.phoneNumbers.update({ id: p.id, body: {
        provider: "twilio", name: "sdk number 2", smsEnabled: false,
        twilioAuthToken: TOKEN + "_2",
      } });
      noToken(u);
      assert.equal(u.twilioAuthToken, undefined);
      assert.equal(u.name, "sdk number 2");
      assert.equal(u.smsEnabled, false);
      assert.equal(u.assistantId, a.id, "PATCH keeps what it was not given");
      assert.equal(u.number, number);
      assert.equal(u.createdAt, p.createdAt);

      const d = await client.phoneNumbers.delete({ id: p.id });
      noToken(d);
      assert.equal(d.id, p.id);
      assert.equal(d.name, "sdk number 2");
      assert.equal((await vapiError(client.phoneNumbers.get({ id: p.id }))).statusCode, 404);
    } finally {
      await client.phoneNumbers.delete({ id: p.id }).catch(() => {});
      await client.assistants.delete({ id: a.id });
    }
  });

  it("the SDK's members the module has not: 400 naming each", async () => {
    const base = { provider: "twilio", number, twilioAccountSid: "AC_sdk",
                   twilioAuthToken: TOKEN };
    for (const [extra, field] of [
      [{ twilioApiKey: "SK1", twilioApiSecret: "s" }, "twilioApiKey"],
      [{ fallbackDestination: { type: "number", number: "+15550000099" } }, "fallbackDestination"],
      [{ hooks: [] }, "hooks"],
      [{ squadId: "b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10" }, "squadId"],
      [{ workflowId: "b1c1a4a2-5f1e-4c51-9d58-9d0f0e1b3a10" }, "workflowId"],
      [{ server: { url: "http://127.0.0.1:9/hook" } }, "server"],
    ]) {
      const e = await vapiError(client.phoneNumbers.create({ ...base, ...extra }));
      assert.equal(e.statusCode, 400, field);
      assert.match(e.body.message, new RegExp(`^${field} is not supported`));
    }
    const e = await vapiError(client.phoneNumbers.create({ ...base, provider: "vapi" }));
    assert.equal(e.statusCode, 400);
    assert.equal(e.body.message, "provider must be one of twilio");
    const t = await vapiError(client.phoneNumbers.create({ provider: "twilio", number,
                                                           twilioAccountSid: "AC_sdk" }));
    assert.equal(t.body.message, "twilioAuthToken is required");
    // none of them was written
    assert.ok(!(await client.phoneNumbers.list({ limit: 1000 })).some((x) => x.number === number));
  });
});
