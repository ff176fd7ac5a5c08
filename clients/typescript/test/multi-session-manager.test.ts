import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import {
  MultiSessionManager, SessionLimitError, type SessionRenewedEvent,
} from "@callhq/sessions";
import { assistant, client } from "./env.js";

describe("MultiSessionManager", () => {
  it("keeps one conversation per key, created on first use", async () => {
    const a = await assistant();
    const msm = new MultiSessionManager({
      client, cleanupIntervalMs: 0,
      sessionFor: (user: string) => ({ assistantId: a.id, name: `user ${user}` }),
    });
    assert.equal(msm.size, 0);
    assert.deepEqual(await msm.history("sarah"), []);
    assert.equal(msm.size, 0, "reading history opens nothing");

    await Promise.all([msm.send("sarah", "my name is Sarah"), msm.send("tom", "my name is Tom")]);
    assert.deepEqual(msm.keys().sort(), ["sarah", "tom"]);
    assert.equal(await msm.send("sarah", "What is my name?"), "Your name is Sarah.");
    assert.equal(await msm.send("tom", "What is my name?"), "Your name is Tom.");

    const s = await client.sessions.get(msm.get("tom")!.sessionId!);
    assert.equal(s.name, "user tom");
    let streamed = "";
    for await (const d of msm.stream("sarah", "Who am I?")) streamed += d;
    assert.equal(streamed, "Your name is Sarah.");
    await msm.close();
  });

  it("serialises the sends of one key and runs different keys concurrently", async () => {
    const a = await assistant("recall+slow-400");
    const msm = new MultiSessionManager({
      client, cleanupIntervalMs: 0, sessionFor: () => ({ assistantId: a.id }),
    });
    // one key, four sends at once: one session, turns in order
    const replies = await Promise.all([1, 2, 3, 4].map((i) => msm.send("k", `m${i}`)));
    replies.forEach((r, i) => assert.equal(r, `You said: "m${i + 1}" (turn ${i + 1})`));
    assert.equal(msm.size, 1);

    // four keys at once: concurrently (one at a time would take 1600 ms or more)
    const t0 = Date.now();
    await Promise.all(["w", "x", "y", "z"].map((k) => msm.send(k, "hi")));
    const took = Date.now() - t0;
    assert.ok(took < 1400, `four keys took ${took} ms`);
    await msm.close();
  });

  it("at the cap, ends the least recently used idle conversation", async () => {
    const a = await assistant();
    const evicted: [string, string | undefined][] = [];
    const msm = new MultiSessionManager({
      client, cleanupIntervalMs: 0, maxSessions: 2,
      sessionFor: () => ({ assistantId: a.id }),
      onSessionEvicted: (k, id) => evicted.push([k, id]),
    });
    await msm.send("a", "hi");
    await msm.send("b", "hi");
    await msm.send("a", "again"); // b is now the least recently used
    const bSession = msm.get("b")!.sessionId!;
    await msm.send("c", "hi");
    assert.deepEqual(msm.keys(), ["a", "c"]);
    assert.deepEqual(evicted, [["b", bSession]]);
    for (let i = 0; i < 50; i++) {
      if ((await client.sessions.get(bSession)).status === "completed") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await client.sessions.get(bSession)).status, "completed");
    await msm.close({ end: true });
    assert.equal(msm.size, 0);
  });

  it("refuses a new key when every open conversation is busy", async () => {
    const a = await assistant("recall+slow-500");
    const msm = new MultiSessionManager({
      client, cleanupIntervalMs: 0, maxSessions: 1, sessionFor: () => ({ assistantId: a.id }),
    });
    const busy = msm.send("a", "hi");
    await assert.rejects(msm.send("b", "hi"), SessionLimitError);
    await busy;
    assert.match(await msm.send("b", "hi"), /turn 1/); // a is idle again: evicted
    assert.deepEqual(msm.keys(), ["b"]);
    await msm.close();
  });

  it("cleanup() forgets idle conversations whose session has expired", async () => {
    const a = await assistant();
    let now = Date.now();
    const msm = new MultiSessionManager({
      client, cleanupIntervalMs: 0, now: () => now,
      sessionFor: (k: string) => ({ assistantId: a.id, expirationSeconds: k === "short" ? 60 : 3600 }),
    });
    await msm.send("short", "hi");
    await msm.send("long", "hi");
    assert.deepEqual(await msm.cleanup(), []);
    now += 120_000;
    assert.deepEqual(await msm.cleanup(), ["short"]);
    assert.deepEqual(msm.keys(), ["long"]);
    await msm.close();
  });

  it("reports a renewed session with its key", async () => {
    const a = await assistant();
    const renewed: [string, SessionRenewedEvent][] = [];
    const msm = new MultiSessionManager({
      client, cleanupIntervalMs: 0, sessionFor: () => ({ assistantId: a.id }),
      onSessionRenewed: (k, e) => renewed.push([k, e]),
    });
    await msm.send("sarah", "my name is Sarah");
    await client.sessions.update(msm.get("sarah")!.sessionId!, { status: "completed" });
    assert.equal(await msm.send("sarah", "What is my name?"), "Your name is Sarah.");
    assert.equal(renewed.length, 1);
    assert.equal(renewed[0]![0], "sarah");
    assert.equal(renewed[0]![1].sessionId, msm.get("sarah")!.sessionId);
    await msm.close();
  });
});
