import { CallHQError, errorFromResponse } from "./errors.js";
import { parseSSE } from "./sse.js";
import type {
  Assistant, AssistantFields, Chat, ChatStreamEvent, CreateChat,
  CreateSession, ListQuery, Page, Session, UpdateSession,
} from "./types.js";

export interface CallHQClientOptions {
  /** where the module serves the API, e.g. "http://127.0.0.1:8080" */
  baseUrl: string;
  /** an API key (`make api-key`); keep it on the server side */
  apiKey: string;
  /** time limit of one request, in ms (default 120000); a stream's limit
   *  covers the wait for its first byte only */
  timeoutMs?: number;
  /** another fetch (default: globalThis.fetch) */
  fetch?: typeof fetch;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/**
 * A streamed chat: iterate it for the events as the model produces them.
 * `text` grows with every delta; `chatId` and `sessionId` are known from
 * the first event on. `abort()` (or leaving the loop early) cuts the stream;
 * the server then records what arrived as an incomplete chat.
 */
export class ChatStream implements AsyncIterable<ChatStreamEvent> {
  text = "";
  chatId?: string;
  sessionId?: string;
  private readonly body: ReadableStream<Uint8Array>;
  private readonly controller: AbortController;
  private readonly onEnd: () => void;
  private used = false;

  constructor(body: ReadableStream<Uint8Array>, controller: AbortController,
              onEnd: () => void = () => undefined) {
    this.body = body;
    this.controller = controller;
    this.onEnd = onEnd;
  }

  abort(): void {
    this.controller.abort();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ChatStreamEvent, void, undefined> {
    if (this.used) throw new Error("a ChatStream can be iterated once");
    this.used = true;
    try {
      for await (const ev of parseSSE(this.body)) {
        if (ev.data === "[DONE]") continue;
        let parsed: ChatStreamEvent;
        try {
          parsed = JSON.parse(ev.data) as ChatStreamEvent;
        } catch (cause) {
          throw new CallHQError(502, "Bad Gateway", `unreadable stream event: ${ev.data}`,
                                { cause });
        }
        this.chatId ??= parsed.id;
        this.sessionId ??= parsed.sessionId;
        if (typeof parsed.delta === "string") this.text += parsed.delta;
        yield parsed;
      }
    } catch (err) {
      throw wrapFetchError(err, this.controller.signal);
    } finally {
      this.controller.abort();
      this.onEnd();
    }
  }

  /** Reads the whole stream and returns the reply's text. */
  async finish(): Promise<string> {
    for await (const _ of this) { /* collect */ }
    return this.text;
  }
}

/**
 * The CallHQ API over fetch: assistants, sessions and chats, as the
 * module serves them. Errors are thrown as CallHQError.
 */
export class CallHQClient {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(options: CallHQClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw new Error("no fetch: pass options.fetch");
    this.fetchFn = f.bind(globalThis);
  }

  readonly assistants = {
    create: (body: AssistantFields, o?: RequestOptions) =>
      this.request<Assistant>("POST", "/assistant", body, o),
    list: (q?: ListQuery, o?: RequestOptions) =>
      this.request<Assistant[]>("GET", "/assistant" + query(q), undefined, o),
    get: (id: string, o?: RequestOptions) =>
      this.request<Assistant>("GET", `/assistant/${enc(id)}`, undefined, o),
    update: (id: string, body: AssistantFields, o?: RequestOptions) =>
      this.request<Assistant>("PATCH", `/assistant/${enc(id)}`, body, o),
    delete: (id: string, o?: RequestOptions) =>
      this.request<Assistant>("DELETE", `/assistant/${enc(id)}`, undefined, o),
  };

  readonly sessions = {
    create: (body: CreateSession, o?: RequestOptions) =>
      this.request<Session>("POST", "/session", body, o),
    list: (q?: ListQuery, o?: RequestOptions) =>
      this.request<Page<Session>>("GET", "/session" + query(q), undefined, o),
    get: (id: string, o?: RequestOptions) =>
      this.request<Session>("GET", `/session/${enc(id)}`, undefined, o),
    update: (id: string, body: UpdateSession, o?: RequestOptions) =>
      this.request<Session>("PATCH", `/session/${enc(id)}`, body, o),
    delete: (id: string, o?: RequestOptions) =>
      this.request<Session>("DELETE", `/session/${enc(id)}`, undefined, o),
  };

  readonly chats = {
    create: (body: CreateChat, o?: RequestOptions) =>
      this.request<Chat>("POST", "/chat", { ...body, stream: false }, o),
    /** POST /chat with stream: true; resolves once the answer has begun */
    stream: (body: CreateChat, o?: RequestOptions) => this.openStream(body, o),
    list: (q?: ListQuery, o?: RequestOptions) =>
      this.request<Page<Chat>>("GET", "/chat" + query(q), undefined, o),
    get: (id: string, o?: RequestOptions) =>
      this.request<Chat>("GET", `/chat/${enc(id)}`, undefined, o),
    delete: (id: string, o?: RequestOptions) =>
      this.request<Chat>("DELETE", `/chat/${enc(id)}`, undefined, o),
  };

  /** One API call: JSON in, JSON out, CallHQError on any failure. */
  async request<T>(method: string, path: string, body?: unknown,
                   options?: RequestOptions): Promise<T> {
    const { signal, clearTimer, detach } = this.signal(options?.signal);
    try {
      const res = await this.fetchFn(this.baseUrl + path, {
        method,
        headers: this.headers(body !== undefined, "application/json"),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      if (!res.ok) throw await errorFromResponse(res);
      return (await res.json()) as T;
    } catch (err) {
      throw wrapFetchError(err, signal);
    } finally {
      clearTimer();
      detach();
    }
  }

  private async openStream(body: CreateChat, options?: RequestOptions): Promise<ChatStream> {
    const { signal, controller, clearTimer, detach } = this.signal(options?.signal);
    try {
      const res = await this.fetchFn(this.baseUrl + "/chat", {
        method: "POST",
        headers: this.headers(true, "text/event-stream"),
        body: JSON.stringify({ ...body, stream: true }),
        signal,
      });
      if (!res.ok) throw await errorFromResponse(res);
      if (!res.body) throw new CallHQError(502, "Bad Gateway", "stream without a body");
      clearTimer(); // the time limit was for the first byte; the stream may run long
      return new ChatStream(res.body, controller, detach);
    } catch (err) {
      clearTimer();
      detach();
      controller.abort();
      throw wrapFetchError(err, signal);
    }
  }

  private headers(json: boolean, accept: string): Record<string, string> {
    const h: Record<string, string> = {
      Authorization: `Bearer ${this.apiKey}`,
      Accept: accept,
    };
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  /** The request's signal: the caller's, plus the time limit. */
  private signal(outer: AbortSignal | undefined) {
    const controller = new AbortController();
    const onAbort = () => controller.abort(outer?.reason);
    if (outer?.aborted) onAbort();
    outer?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(
      () => controller.abort(new CallHQError(0, "Timeout",
                                             `no answer within ${this.timeoutMs} ms`)),
      this.timeoutMs);
    return {
      signal: controller.signal,
      controller,
      clearTimer: () => clearTimeout(timer),
      detach: () => outer?.removeEventListener("abort", onAbort),
    };
  }
}

function wrapFetchError(err: unknown, signal: AbortSignal): unknown {
  if (err instanceof CallHQError) return err;
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof CallHQError) return reason;
    return new CallHQError(0, "Aborted", "request aborted", { cause: err });
  }
  let msg = err instanceof Error ? err.message : String(err);
  // Node's fetch says "fetch failed" and keeps the reason in cause
  const cause = (err as { cause?: { code?: unknown; message?: unknown } })?.cause;
  if (typeof cause?.code === "string") msg += ` (${cause.code})`;
  else if (typeof cause?.message === "string") msg += ` (${cause.message})`;
  return new CallHQError(0, "Network Error", msg, { cause: err });
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

function query(q?: ListQuery): string {
  if (!q) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined) params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}
