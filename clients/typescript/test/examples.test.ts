// The examples run as they are, against the server under test.
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const examples = join(dirname(fileURLToPath(import.meta.url)), "..", "examples");

async function example(name: string): Promise<string> {
  const { stdout } = await run(process.execPath, [join(examples, `${name}.js`)],
                               { env: process.env, timeout: 30_000 });
  return stdout;
}

describe("examples", () => {
  it("session.ts: a session remembers the name", async () => {
    const out = await example("session");
    assert.match(out, /assistant: Nice to meet you, Sarah!/);
    assert.match(out, /assistant: Your name is Sarah\.\n/);
    assert.match(out, /holds 4 messages/);
  });

  it("multi-assistant.ts: two customers through triage and billing", async () => {
    const out = await example("multi-assistant");
    assert.match(out, /\[c-1001\] billing: Your name is Sarah\./);
    assert.match(out, /\[c-1002\] billing: Your name is Tom\./);
    assert.match(out, /4 conversations open/);
  });

  it("previous-chat.ts: a previousChatId chain keeps the context", async () => {
    const out = await example("previous-chat");
    assert.match(out, /assistant: Your name is Sarah\./);
    assert.match(out, /assistant: You live in Paris\./);
    assert.match(out, /Who am I\?\nassistant: Your name is Sarah\.\n\(chat [0-9a-f-]{36}\)/);
  });
});
