// The official OpenAI SDK (openai, pinned in package.json) against the
// module's OpenAI surface (callhq_openai at /v1/): the SDK is given only
// baseURL and apiKey. scripts/test-clients.sh starts PostgreSQL, the mock
// model (t/mock/mock_model.py) and nginx, and exports CALLHQ_URL,
// CALLHQ_KEY and CALLHQ_KEY_B.
import { strict as assert } from "node:assert";
import { before, describe, it } from "node:test";
import OpenAI from "openai";

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with scripts/test-clients.sh`);
  return v;
}

const BASE_URL = env("CALLHQ_URL");
const client = new OpenAI({ baseURL: `${BASE_URL}/v1`, apiKey: env("CALLHQ_KEY"),
                            maxRetries: 0 });

/* an assistant of the mock's "recall" model, named for the SDK's model */
const NAME = `openai-compat-${process.pid}`;

before(async () => {
  const res = await fetch(`${BASE_URL}/assistant`, {
    method: "POST",
    headers: { Authorization: `Bearer ${env("CALLHQ_KEY")}`,
               "Content-Type": "application/json" },
    body: JSON.stringify({
      name: NAME,
      model: { provider: "openai", model: "recall",
               messages: [{ role: "system", content: "You are a test assistant." }] },
    }),
  });
  assert.equal(res.status, 201);
});

describe("responses.create", () => {
  it("answers a Response object, not a stream, by default", async () => {
    const r = await client.responses.create({ model: NAME, input: "Hi, my name is Sarah." });
    assert.match(r.id, /^resp_[0-9a-f-]{36}$/);
    assert.equal(r.object, "response");
    assert.equal(r.status, "completed");
    assert.equal(r.model, NAME);
    assert.equal(r.output[0].type, "message");
    assert.equal(r.output[0].content[0].type, "output_text");
    assert.ok(r.output_text.length > 0);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  });

  it("chains by previous_response_id", async () => {
    const first = await client.responses.create({ model: NAME, input: "My name is Ada." });
    const second = await client.responses.create({
      model: NAME, input: "What is my name?", previous_response_id: first.id,
    });
    assert.equal(second.previous_response_id, first.id);
    assert.match(second.output_text, /Ada/);
  });

  it("streams with stream: true, every event numbered in order", async () => {
    const stream = await client.responses.create({ model: NAME, input: "Hello there", stream: true });
    const types = [];
    let seq = 0;
    let text = "";
    for await (const ev of stream) {
      assert.equal(ev.sequence_number, seq++);
      types.push(ev.type);
      if (ev.type === "response.output_text.delta") text += ev.delta;
      if (ev.type === "response.completed") assert.equal(ev.response.output_text ?? text, text);
    }
    assert.deepEqual(types.slice(0, 4), ["response.created", "response.in_progress",
                                        "response.output_item.added",
                                        "response.content_part.added"]);
    assert.deepEqual(types.slice(-4), ["response.output_text.done", "response.content_part.done",
                                      "response.output_item.done", "response.completed"]);
    assert.ok(types.includes("response.output_text.delta"));
    assert.ok(text.length > 0);
  });
});

describe("responses.retrieve and delete", () => {
  it("reads back a response, then deletes it", async () => {
    const r = await client.responses.create({ model: NAME, input: "I live in Paris." });
    const got = await client.responses.retrieve(r.id);
    assert.equal(got.id, r.id);
    assert.equal(got.status, "completed");
    assert.equal(got.output_text, r.output_text);
    await client.responses.delete(r.id);
    await assert.rejects(client.responses.retrieve(r.id),
                         (e) => e instanceof OpenAI.NotFoundError);
  });
});

describe("conversation", () => {
  it("a session made by POST /session is a conversation", async () => {
    const a = await (await fetch(`${BASE_URL}/assistant?limit=1000`, {
      headers: { Authorization: `Bearer ${env("CALLHQ_KEY")}` },
    })).json();
    const assistantId = a.find((x) => x.name === NAME).id;
    const s = await (await fetch(`${BASE_URL}/session`, {
      method: "POST",
      headers: { Authorization: `Bearer ${env("CALLHQ_KEY")}`,
                 "Content-Type": "application/json" },
      body: JSON.stringify({ assistantId }),
    })).json();
    const conversation = `conv_${s.id}`;
    await client.responses.create({ model: NAME, input: "My name is Linus.", conversation });
    const r = await client.responses.create({ model: NAME, input: "What is my name?",
                                              conversation: { id: conversation } });
    assert.equal(r.conversation.id, conversation);
    assert.match(r.output_text, /Linus/);
  });
});

describe("conversations", () => {
  it("create, a response in it, items.list page by page, retrieve, update, delete", async () => {
    const conv = await client.conversations.create({
      items: [{ type: "message", role: "user", content: "My name is Alan." }],
      metadata: { assistant: NAME, topic: "sdk" },
    });
    assert.match(conv.id, /^conv_[0-9a-f-]{36}$/);
    assert.equal(conv.object, "conversation");
    assert.deepEqual(conv.metadata, { assistant: NAME, topic: "sdk" });

    const r = await client.responses.create({ model: NAME, input: "What is my name?",
                                              conversation: conv.id });
    assert.equal(r.conversation.id, conv.id);
    assert.match(r.output_text, /Alan/);

    // one item a page: the SDK follows last_id and has_more to the end
    const items = [];
    for await (const item of client.conversations.items.list(conv.id, { limit: 1, order: "asc" })) {
      items.push(item);
    }
    assert.deepEqual(items.map((i) => [i.type, i.role]),
                     [["message", "user"], ["message", "user"], ["message", "assistant"]]);
    assert.equal(items[0].content[0].type, "input_text");
    assert.equal(items[0].content[0].text, "My name is Alan.");
    assert.equal(items[1].content[0].text, "What is my name?");
    assert.equal(items[2].content[0].type, "output_text");
    assert.equal(items[2].content[0].text, r.output_text);

    const newest = await client.conversations.items.list(conv.id, { limit: 2 });
    assert.deepEqual(newest.data.map((i) => i.id), [items[2].id, items[1].id]);
    assert.equal(newest.has_more, true);

    const added = await client.conversations.items.create(conv.id, {
      items: [{ type: "message", role: "user", content: [{ type: "input_text", text: "I like tea." }] }],
    });
    assert.equal(added.data.length, 1);
    const one = await client.conversations.items.retrieve(added.data[0].id,
                                                          { conversation_id: conv.id });
    assert.equal(one.content[0].text, "I like tea.");
    const after = await client.conversations.items.delete(added.data[0].id,
                                                          { conversation_id: conv.id });
    assert.equal(after.id, conv.id);
    await assert.rejects(client.conversations.items.retrieve(added.data[0].id,
                                                             { conversation_id: conv.id }),
                         (e) => e instanceof OpenAI.NotFoundError && e.param === "item_id");

    const updated = await client.conversations.update(conv.id, { metadata: { topic: "names" } });
    assert.deepEqual(updated.metadata, { topic: "names" });
    assert.deepEqual((await client.conversations.retrieve(conv.id)).metadata, { topic: "names" });

    const deleted = await client.conversations.delete(conv.id);
    assert.deepEqual([deleted.id, deleted.object, deleted.deleted],
                     [conv.id, "conversation.deleted", true]);
    await assert.rejects(client.conversations.retrieve(conv.id),
                         (e) => e instanceof OpenAI.NotFoundError && e.param === "conversation_id");
  });

  it("a conversation made here is a session of the CallHQ API", async () => {
    const conv = await client.conversations.create({ metadata: { assistant: NAME } });
    await client.responses.create({ model: NAME, input: "My name is Grace.", conversation: conv.id });
    const s = await (await fetch(`${BASE_URL}/session/${conv.id.slice(5)}`, {
      headers: { Authorization: `Bearer ${env("CALLHQ_KEY")}` },
    })).json();
    assert.deepEqual(s.messages.map((m) => m.role), ["user", "assistant"]);
    assert.equal(s.messages[0].content, "My name is Grace.");
  });

  it("another org's conversation is a NotFoundError", async () => {
    const conv = await client.conversations.create({});
    const b = new OpenAI({ baseURL: `${BASE_URL}/v1`, apiKey: env("CALLHQ_KEY_B"), maxRetries: 0 });
    await assert.rejects(b.conversations.items.list(conv.id),
                         (e) => e instanceof OpenAI.NotFoundError);
  });

  it("a bad field is a BadRequestError naming it", async () => {
    await assert.rejects(client.conversations.create({ metadata: { k: "x".repeat(513) } }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === "metadata"
                                && /metadata/.test(e.message));
    await assert.rejects(client.conversations.create({ items: [{ role: "robot", content: "x" }] }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === "items[0].role"
                                && /items\[0\]\.role/.test(e.message));
  });
});

describe("responses.inputItems.list", () => {
  it("lists a response's input items, newest first, page by page", async () => {
    const r = await client.responses.create({
      model: NAME,
      input: [{ role: "user", content: "one" }, { role: "assistant", content: "two" },
              { role: "user", content: [{ type: "input_text", text: "three" }] }],
    });
    const page = await client.responses.inputItems.list(r.id);
    assert.deepEqual(page.data.map((i) => i.content[0].text), ["three", "two", "one"]);
    const all = [];
    for await (const item of client.responses.inputItems.list(r.id, { limit: 2, order: "asc" })) {
      all.push(item.content[0].text);
    }
    assert.deepEqual(all, ["one", "two", "three"]);
    await assert.rejects(client.responses.inputItems.list("resp_nope"),
                         (e) => e instanceof OpenAI.NotFoundError);
  });
});

describe("responses.stream()", () => {
  it("gives deltas and the final Response", async () => {
    let deltas = "";
    const stream = client.responses.stream({ model: NAME, input: "Hi, my name is Grace." })
      .on("response.output_text.delta", (ev) => { deltas += ev.delta; });
    const final = await stream.finalResponse();
    assert.equal(final.status, "completed");
    assert.equal(final.output_text, deltas);
    assert.ok(deltas.length > 0);
  });
});

describe("tools", () => {
  /* the mock's echo+tool: a call to the request's tool, then, given its
     output, the messages it got as its text */
  const TOOLS = `openai-compat-tools-${process.pid}`;
  const tools = [{ type: "function", name: "get_weather", description: "The weather of a city",
                   parameters: { type: "object", properties: { q: { type: "string" } } },
                   strict: false }];

  before(async () => {
    const res = await fetch(`${BASE_URL}/assistant`, {
      method: "POST",
      headers: { Authorization: `Bearer ${env("CALLHQ_KEY")}`,
                 "Content-Type": "application/json" },
      body: JSON.stringify({ name: TOOLS, model: { provider: "openai", model: "echo+tool" } }),
    });
    assert.equal(res.status, 201);
  });

  it("a function_call, then its function_call_output by previous_response_id", async () => {
    const first = await client.responses.create({ model: TOOLS, input: "Weather in Paris?", tools });
    assert.equal(first.status, "completed");
    assert.equal(first.output.length, 1);
    const call = first.output[0];
    assert.equal(call.type, "function_call");
    assert.equal(call.name, "get_weather");
    assert.deepEqual(JSON.parse(call.arguments), { q: "Weather in Paris?", i: 0 });
    assert.deepEqual(first.tools.map((t) => t.name), ["get_weather"]);

    const second = await client.responses.create({
      model: TOOLS, previous_response_id: first.id, tools,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny" }],
    });
    assert.equal(second.status, "completed");
    assert.equal(second.output[0].type, "message");
    /* what went upstream: the question, the call, its output, in order */
    const sent = JSON.parse(second.output_text);
    assert.deepEqual(sent.map((m) => m.role), ["user", "assistant", "tool"]);
    assert.equal(sent[1].tool_calls[0].id, call.call_id);
    assert.equal(sent[1].tool_calls[0].function.arguments, call.arguments);
    assert.deepEqual([sent[2].tool_call_id, sent[2].content], [call.call_id, "sunny"]);

    const got = await client.responses.retrieve(first.id);
    assert.deepEqual(got.output, first.output);
  });

  it("responses.stream() rebuilds the call from its argument deltas", async () => {
    let deltas = "";
    const stream = client.responses.stream({ model: TOOLS, input: "Weather in Rome?", tools })
      .on("response.function_call_arguments.delta", (ev) => { deltas += ev.delta; });
    const final = await stream.finalResponse();
    assert.equal(final.status, "completed");
    assert.equal(final.output[0].type, "function_call");
    assert.equal(final.output[0].arguments, deltas);
    assert.deepEqual(JSON.parse(deltas), { q: "Weather in Rome?", i: 0 });
  });

  it("a bad tool is a BadRequestError naming it", async () => {
    await assert.rejects(client.responses.create({ model: TOOLS, input: "x",
                                                   tools: [{ type: "function" }] }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === "tools[0].name"
                                && /tools\[0\]\.name/.test(e.message));
  });
});

describe("errors", () => {
  it("an unknown key is an AuthenticationError", async () => {
    const bad = new OpenAI({ baseURL: `${BASE_URL}/v1`, apiKey: "nope", maxRetries: 0 });
    await assert.rejects(bad.responses.create({ model: NAME, input: "x" }),
                         (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  });

  it("an unknown model is a NotFoundError naming model", async () => {
    await assert.rejects(client.responses.create({ model: "no-such-assistant", input: "x" }),
                         (e) => e instanceof OpenAI.NotFoundError && e.param === "model"
                                && /no-such-assistant/.test(e.message));
  });

  it("a bad field is a BadRequestError naming it", async () => {
    await assert.rejects(client.responses.create({ model: NAME, input: "x", temperature: 9 }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === "temperature"
                                && /temperature/.test(e.message));
  });
});
