// Without sessions: chain chats with previousChatId. Each chat carries the
// whole context of the one before it, so any chat can be continued (or
// branched) by its id.
//
//   node build/examples/previous-chat.js
import { client, demoAssistant } from "./env.js";

const assistant = await demoAssistant("chain", "You are a helpful assistant.");

let lastChatId: string | undefined;
async function say(input: string): Promise<string> {
  const chat = await client.chats.create(lastChatId
    ? { previousChatId: lastChatId, input }
    : { assistantId: assistant.id, input });
  lastChatId = chat.id;
  return chat.output.map((m) => m.content).join("");
}

for (const input of ["Hi, my name is Sarah", "I live in Paris", "What is my name?",
                     "Where do I live?"]) {
  console.log(`user: ${input}`);
  console.log(`assistant: ${await say(input)}`);
}

// the same chain, streamed: deltas as they come
const stream = await client.chats.stream({ previousChatId: lastChatId, input: "Who am I?" });
process.stdout.write("user: Who am I?\nassistant: ");
for await (const event of stream) process.stdout.write(event.delta);
process.stdout.write(`\n(chat ${stream.chatId})\n`);
