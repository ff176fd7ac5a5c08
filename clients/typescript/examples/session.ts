// One conversation in a session: create it, send every message with its
// id (the server keeps the history), stream a reply, read the history, end.
//
//   node build/examples/session.js
import { SessionManager } from "@callhq/sessions";
import { client, demoAssistant } from "./env.js";

const assistant = await demoAssistant("support", "You are a friendly support agent.");

const conversation = new SessionManager({
  client,
  assistantId: assistant.id,
  name: "support: Sarah",
  expirationSeconds: 3600,
  onSessionRenewed: (e) =>
    console.log(`(session ${e.previousSessionId} expired; went on in ${e.sessionId} ` +
                `with ${e.carriedMessages} messages of history)`),
});

console.log("user: Hi, my name is Sarah");
console.log("assistant:", await conversation.send("Hi, my name is Sarah"));

console.log("user: What is my name?");
process.stdout.write("assistant: ");
for await (const delta of conversation.stream("What is my name?")) {
  process.stdout.write(delta);
}
process.stdout.write("\n");

const history = await conversation.history();
console.log(`session ${conversation.sessionId} holds ${history.length} messages`);
await conversation.end();
