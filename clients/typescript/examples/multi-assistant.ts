// A multi-assistant workflow: a session belongs to one assistant, so each
// step of the workflow (triage, then billing) has its own session, and the
// application hands the context over. MultiSessionManager keeps one
// conversation per (customer, assistant) key, creates them lazily and runs
// different customers concurrently.
//
//   node build/examples/multi-assistant.js
import { MultiSessionManager } from "@callhq/sessions";
import { client, demoAssistant } from "./env.js";

const triage = await demoAssistant("triage", "Find out what the customer needs.");
const billing = await demoAssistant("billing", "You handle invoices and refunds.");
const assistants = { triage, billing };

type Key = `${string}:${keyof typeof assistants}`;

const conversations = new MultiSessionManager<Key>({
  client,
  sessionFor: (key) => {
    const [customer, step] = key.split(":") as [string, keyof typeof assistants];
    return { assistantId: assistants[step].id, name: `${step}: ${customer}`,
             expirationSeconds: 3600 };
  },
  maxSessions: 100,
  onSessionRenewed: (key, e) => console.log(`(${key}: new session ${e.sessionId})`),
});

async function serve(customer: string, name: string): Promise<void> {
  const said = await conversations.send(`${customer}:triage`,
                                        `Hi, my name is ${name}. I was charged twice.`);
  console.log(`[${customer}] triage: ${said}`);

  // hand over to billing with what triage learned
  const history = await conversations.history(`${customer}:triage`);
  const handover = history.filter((m) => m.role === "user").map((m) => m.content).join("\n");
  console.log(`[${customer}] billing: ${await conversations.send(`${customer}:billing`, handover)}`);
  console.log(`[${customer}] billing: ${await conversations.send(`${customer}:billing`,
                                                                  "What is my name?")}`);
}

// two customers at once; each one's turns stay in order
await Promise.all([serve("c-1001", "Sarah"), serve("c-1002", "Tom")]);
console.log(`${conversations.size} conversations open`);
await conversations.close({ end: true });
