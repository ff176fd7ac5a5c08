// The server under test: scripts/test-clients.sh starts PostgreSQL, the
// mock model and nginx with the module, and exports where they are.
import { spawnSync } from "node:child_process";
import { CallHQClient, type Assistant } from "@callhq/sessions";

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with scripts/test-clients.sh`);
  return v;
}

export const BASE_URL = env("CALLHQ_URL");
export const KEY_A = env("CALLHQ_KEY");
export const KEY_B = env("CALLHQ_KEY_B");

export const client = new CallHQClient({ baseUrl: BASE_URL, apiKey: KEY_A });
export const clientB = new CallHQClient({ baseUrl: BASE_URL, apiKey: KEY_B });

/** An assistant of org A with a model of the mock (see t/mock/mock_model.py):
 *  "recall" remembers facts, "+slow-<ms>" delays the answer,
 *  "+slowstream-<ms>" delays every delta. */
export function assistant(model = "recall", c = client): Promise<Assistant> {
  return c.assistants.create({
    name: "clients-test",
    model: { provider: "openai", model,
             messages: [{ role: "system", content: "You are a test assistant." }] },
  });
}

/** Runs SQL on the test database; returns psql's unaligned output. */
export function psql(sql: string): string {
  const r = spawnSync("psql", ["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
                               env("CALLHQ_PG"), "-c", sql], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
