// Shared by the examples: a client for the server `make run` started
// (CALLHQ_URL, default http://127.0.0.1:8080; CALLHQ_KEY, default the key
// in .run/api-key) and a helper that creates a demo assistant.
import { readFileSync } from "node:fs";
import { CallHQClient, type Assistant } from "@callhq/sessions";

function defaultKey(): string {
  for (const path of [".run/api-key", "../.run/api-key", "../../.run/api-key"]) {
    try {
      return readFileSync(path, "utf8").trim();
    } catch {
      // try the next one
    }
  }
  throw new Error("set CALLHQ_KEY (or run `make run`, which writes .run/api-key)");
}

export const client = new CallHQClient({
  baseUrl: process.env.CALLHQ_URL ?? "http://127.0.0.1:8080",
  apiKey: process.env.CALLHQ_KEY ?? defaultKey(),
});

/** An assistant with the demo model ("recall" remembers what you tell it). */
export function demoAssistant(name: string, systemPrompt: string): Promise<Assistant> {
  return client.assistants.create({
    name,
    model: {
      provider: "openai",
      model: process.env.CALLHQ_MODEL ?? "recall",
      messages: [{ role: "system", content: systemPrompt }],
    },
  });
}
