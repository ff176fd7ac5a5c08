import { strict as assert } from "node:assert";
import { createServer, type AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { CallHQClient, CallHQError, parseSSE } from "@callhq/sessions";
import { BASE_URL, assistant, client, clientB, sleep } from "./env.js";

function bytes(...parts: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(enc.encode(p));
      c.close();
    },
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("parseSSE", () => {
  it("reads events split anywhere, CRLF or LF, comments and multi-line data", async () => {
    const events = await collect(parseSSE(bytes(
      ": comment\r\nda", "ta: {\"a\":1}\r", "\n\r\n",
      "event: x\ndata: line1\ndata:line2\nid: 7\n\n",
      "data: caf\u00e9 \u2615\n\n",
      "data: cut in the middle")));
    assert.deepEqual(events, [
      { event: "message", data: "{\"a\":1}", id: undefined },
      { event: "x", data: "line1\nline2", id: "7" },
      { event: "message", data: "caf\u00e9 \u2615", id: "7" },
    ]);
  });

  it("decodes a UTF-8 character split between two chunks", async () => {
    const all = new TextEncoder().encode("data: \u00e9t\u00e9\n\n");
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(all.slice(0, 7)); // in the middle of the first é
        c.enqueue(all.slice(7));
        c.close();
      },
    });
    const [ev] = await collect(parseSSE(body));
    assert.equal(ev!.data, "\u00e9t\u00e9");
  });
});

describe("CallHQClient", () => {
  it("creates, reads, lists, updates and deletes an assistant", async () => {
    const a = await assistant();
    assert.match(a.id, /^[0-9a-f-]{36}$/);
    assert.equal((await client.assistants.get(a.id)).name, "clients-test");
    assert.ok((await client.assistants.list({ limit: 1000 })).some((x) => x.id === a.id));
    assert.equal((await client.assistants.update(a.id, { name: "renamed" })).name, "renamed");
    assert.equal((await client.assistants.delete(a.id)).id, a.id);
  });

  it("throws CallHQError with the server's statusCode and message", async () => {
    const a = await assistant();
    await assert.rejects(clientB.assistants.get(a.id), (e: unknown) => {
      assert.ok(e instanceof CallHQError);
      assert.equal(e.statusCode, 404); // another org's id: as if it did not exist
      assert.equal(e.error, "Not Found");
      assert.match(e.message, new RegExp(a.id));
      return true;
    });
    const bad = new CallHQClient({ baseUrl: BASE_URL, apiKey: "cq_wrong" });
    await assert.rejects(bad.assistants.list(), { name: "CallHQError", statusCode: 401 });
    await assert.rejects(client.sessions.create({ assistantId: a.id, name: "x".repeat(41) }),
                         (e: CallHQError) => e.statusCode === 400 && /name/.test(e.message));
    await assert.rejects(client.chats.create({ input: "hi" }),
                         { statusCode: 400 });
  });

  it("turns a refused connection into statusCode 0, a time-out into 'Timeout'", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const { port } = closed.address() as AddressInfo;
    await new Promise((r) => closed.close(r));
    const nowhere = new CallHQClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: "x" });
    await assert.rejects(nowhere.assistants.list(),
                         { name: "CallHQError", statusCode: 0, error: "Network Error",
                           message: /ECONNREFUSED/ });

    const slow = await assistant("recall+slow-1500");
    const impatient = new CallHQClient({ baseUrl: BASE_URL, apiKey: process.env.CALLHQ_KEY!,
                                         timeoutMs: 300 });
    await assert.rejects(impatient.chats.create({ assistantId: slow.id, input: "hi" }),
                         { name: "CallHQError", statusCode: 0, error: "Timeout" });
    const ctl = new AbortController();
    const p = client.chats.create({ assistantId: slow.id, input: "hi" }, { signal: ctl.signal });
    ctl.abort();
    await assert.rejects(p, { statusCode: 0, error: "Aborted" });
  });

  it("chats in a session and streams the reply as deltas", async () => {
    const a = await assistant();
    const s = await client.sessions.create({ assistantId: a.id, name: "stream" });
    const chat = await client.chats.create({ sessionId: s.id, input: "Hi, my name is Sarah" });
    assert.equal(chat.sessionId, s.id);
    assert.match(chat.output[0]!.content!, /Sarah/);

    const stream = await client.chats.stream({ sessionId: s.id, input: "What is my name?" });
    const events = await collect(stream);
    assert.ok(events.length > 1, "several deltas");
    assert.equal(events.map((e) => e.delta).join(""), "Your name is Sarah.");
    assert.equal(stream.text, "Your name is Sarah.");
    assert.equal(stream.sessionId, s.id);
    assert.equal((await client.chats.get(stream.chatId!)).output[0]!.content,
                 "Your name is Sarah.");
    assert.equal((await client.sessions.get(s.id)).messages!.length, 4);
  });

  it("cuts a stream when the loop is left early; the server keeps what arrived", async () => {
    const a = await assistant("recall+slowstream-300");
    const s = await client.sessions.create({ assistantId: a.id });
    const stream = await client.chats.stream({ sessionId: s.id,
                                               input: "one two three four five six" });
    for await (const ev of stream) {
      assert.equal(ev.delta, "You ");
      break;
    }
    let chat;
    for (let i = 0; i < 50; i++) {
      chat = await client.chats.get(stream.chatId!).catch(() => undefined);
      if (chat) break;
      await sleep(100);
    }
    assert.ok(chat, "the cut chat was recorded");
    assert.equal(chat.status, "incomplete");
    assert.ok(!chat.output[0]!.content!.includes("(turn 1)"));
  });

  it("pages sessions and filters chats", async () => {
    const a = await assistant();
    const s = await client.sessions.create({ assistantId: a.id });
    await client.chats.create({ sessionId: s.id, input: "one" });
    await client.chats.create({ sessionId: s.id, input: "two" });
    const chats = await client.chats.list({ sessionId: s.id, sortOrder: "ASC" });
    assert.deepEqual(chats.results.map((c) => c.input), ["one", "two"]);
    const page = await client.sessions.list({ assistantId: a.id, limit: 1 });
    assert.equal(page.metadata.totalItems, 1);
    assert.equal(page.results[0]!.id, s.id);
  });
});
