/** One server-sent event. */
export interface SSEEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Parses a text/event-stream body into events, as the HTML standard says:
 * lines end in LF, CRLF or CR; a blank line ends an event; "data:" lines
 * are joined with LF; lines starting with ":" are comments. An event that
 * the stream ends in the middle of is dropped.
 */
export async function* parseSSE(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<SSEEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  let finished = false;

  try {
    for (;;) {
      const { value, done } = await reader.read();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let start = 0;
      for (;;) {
        const nl = buf.slice(start).search(/\r\n|\r|\n/);
        if (nl < 0) break;
        const end = start + nl;
        // a CR at the very end may be the first half of a CRLF
        if (buf[end] === "\r" && end + 1 === buf.length && !done) break;
        const line = buf.slice(start, end);
        start = end + (buf.startsWith("\r\n", end) ? 2 : 1);

        if (line === "") {
          if (data.length > 0) {
            yield { event: event || "message", data: data.join("\n"), id };
          }
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") event = val;
        else if (field === "id") id = val;
      }
      buf = buf.slice(start);
      if (done) {
        finished = true;
        return;
      }
    }
  } finally {
    // stopped early (the consumer broke out, or an error): drop the body
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
