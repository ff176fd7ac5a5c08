import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import {
  CallHQError, SessionManager, type SessionRenewedEvent,
} from "@callhq/sessions";
import { assistant, client, psql } from "./env.js";

describe("SessionManager", () => {
  it("creates its session on the first send and keeps the context", async () => {
    const a = await assistant();
    const sm = new SessionManager({ client, assistantId: a.id, name: "sm-basic",
                                    expirationSeconds: 600 });
    assert.equal(sm.sessionId, undefined);
    assert.deepEqual(await sm.history(), []);

    assert.equal(await sm.send("Hi, my name is Sarah"),
                 "Nice to meet you, Sarah! I'll remember that. (turn 1)");
    const s = await client.sessions.get(sm.sessionId!);
    assert.equal(s.name, "sm-basic");
    assert.equal(s.expirationSeconds, 600);
    assert.equal(s.assistantId, a.id);

    assert.equal(await sm.send("What is my name?"), "Your name is Sarah.");
    assert.equal(sm.lastChat!.sessionId, sm.sessionId);
    assert.deepEqual((await sm.history()).map((m) => m.role),
                     ["user", "assistant", "user", "assistant"]);
  });

  it("streams the reply delta by delta, in the same session", async () => {
    const a = await assistant();
    const sm = new SessionManager({ client, assistantId: a.id });
    const started = await sm.start();
    assert.equal(started.status, "active");
    await sm.send("call me Ada");

    const deltas: string[] = [];
    const it = sm.stream("Who am I?");
    let r = await it.next();
    while (!r.done) {
      deltas.push(r.value);
      r = await it.next();
    }
    assert.ok(deltas.length > 1);
    assert.equal(deltas.join(""), "Your name is Ada.");
    assert.equal(r.value.text, "Your name is Ada.");
    assert.equal(r.value.sessionId, started.id);
    assert.equal((await client.chats.get(sm.lastChatId!)).sessionId, started.id);
  });

  it("on 410 (completed) makes a new session, carries the history over and says so", async () => {
    const a = await assistant();
    const events: SessionRenewedEvent[] = [];
    const sm = new SessionManager({ client, assistantId: a.id, name: "sm-renew",
                                    onSessionRenewed: (e) => events.push(e) });
    await sm.send("Hi, my name is Sarah");
    const first = sm.sessionId!;
    // someone (an operator, another process) completes the session
    await client.sessions.update(first, { status: "completed" });

    assert.equal(await sm.send("What is my name?"), "Your name is Sarah.");
    assert.equal(events.length, 1);
    assert.equal(events[0]!.previousSessionId, first);
    assert.equal(events[0]!.sessionId, sm.sessionId);
    assert.notEqual(sm.sessionId, first);
    assert.equal(events[0]!.carriedMessages, 2);
    assert.match(events[0]!.reason, /completed/);
    const renewed = await client.sessions.get(sm.sessionId!);
    assert.equal(renewed.name, "sm-renew");
    assert.equal(renewed.messages!.length, 4);
  });

  it("on 410 (expired) renews for a stream too; carryOverHistory: false starts afresh", async () => {
    const a = await assistant();
    const events: SessionRenewedEvent[] = [];
    const sm = new SessionManager({ client, assistantId: a.id, carryOverHistory: false,
                                    onSessionRenewed: (e) => events.push(e) });
    await sm.send("Hi, my name is Sarah");
    const first = sm.sessionId!;
    psql(`update callhq.sessions set expires_at = now() - interval '1 second'
           where id = '${first}'`);
    assert.equal((await client.sessions.get(first)).status, "completed");

    let text = "";
    for await (const d of sm.stream("What is my name?")) text += d;
    assert.equal(text, "You haven't told me your name yet.");
    assert.equal(events.length, 1);
    assert.equal(events[0]!.previousSessionId, first);
    assert.equal(events[0]!.carriedMessages, 0);
  });

  it("serialises concurrent sends: turns reach the server in order", async () => {
    const a = await assistant("recall+slow-50");
    const sm = new SessionManager({ client, assistantId: a.id });
    const replies = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => sm.send(`message ${i}`)));
    replies.forEach((r, i) => assert.equal(r, `You said: "message ${i + 1}" (turn ${i + 1})`));
    const history = await sm.history();
    assert.deepEqual(history.filter((m) => m.role === "user").map((m) => m.content),
                     ["message 1", "message 2", "message 3", "message 4", "message 5"]);
  });

  it("goes on with an existing session given by id", async () => {
    const a = await assistant();
    const s = await client.sessions.create({ assistantId: a.id, messages: [
      { role: "user", content: "I live in Paris" },
      { role: "assistant", content: "Noted." },
    ] });
    const sm = new SessionManager({ client, assistantId: a.id, sessionId: s.id });
    assert.equal(await sm.send("Where do I live?"), "You live in Paris.");
    assert.equal(sm.sessionId, s.id);
  });

  it("end() completes the session (or deletes it); the next send starts a new one", async () => {
    const a = await assistant();
    const sm = new SessionManager({ client, assistantId: a.id });
    await sm.send("Hi, my name is Sarah");
    const first = sm.sessionId!;
    await sm.end();
    assert.equal((await client.sessions.get(first)).status, "completed");
    assert.equal(await sm.send("What is my name?"), "You haven't told me your name yet.");
    const second = sm.sessionId!;
    assert.notEqual(second, first);
    await sm.end({ delete: true });
    await assert.rejects(client.sessions.get(second), { statusCode: 404 });
  });

  it("passes other errors on as CallHQError", async () => {
    const sm = new SessionManager({ client, assistantId: "00000000-0000-4000-8000-000000000000" });
    await assert.rejects(sm.send("hi"), (e: unknown) =>
      e instanceof CallHQError && e.statusCode === 404 && /0{8}-/.test(e.message));
    const a = await assistant("recall+fail-503");
    const failing = new SessionManager({ client, assistantId: a.id });
    await assert.rejects(failing.send("hi"), (e: unknown) =>
      e instanceof CallHQError && e.statusCode >= 502 && e.statusCode <= 504);
  });
});
