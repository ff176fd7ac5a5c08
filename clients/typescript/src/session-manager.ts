import type { CallHQClient, ChatStream, RequestOptions } from "./client.js";
import { CallHQError } from "./errors.js";
import type { Chat, Customer, Message, Session } from "./types.js";

export interface SessionManagerOptions {
  client: CallHQClient;
  /** the assistant every chat of the session talks to */
  assistantId: string;
  /** the session's name (at most 40 characters) */
  name?: string;
  /** lifetime of each session, counted from its creation (60 to 2592000;
   *  the server's default when absent) */
  expirationSeconds?: number;
  customer?: Customer;
  metadata?: Record<string, unknown>;
  /** go on with this existing session instead of creating one */
  sessionId?: string;
  /** when the session has expired or was completed (410), seed the new
   *  session with the old one's history, so that the conversation keeps
   *  its context (default true); false starts the new one empty */
  carryOverHistory?: boolean;
  /** told whenever a 410 made the manager replace the session */
  onSessionRenewed?: (event: SessionRenewedEvent) => void;
}

export interface SessionRenewedEvent {
  previousSessionId: string;
  sessionId: string;
  /** the server's message, e.g. "Session ... is completed; create a new session" */
  reason: string;
  /** how many messages of the old history the new session starts with */
  carriedMessages: number;
}

/** What a stream returns when it is done (the generator's return value). */
export interface StreamResult {
  text: string;
  chatId?: string;
  sessionId: string;
}

/**
 * One conversation with one assistant, its history kept by the server:
 * the manager creates a session (on the first send, or start()), sends
 * every message with its id, and replaces it when the server says it has
 * expired (410), telling onSessionRenewed so.
 *
 * Sends are serialised: a send (or stream) waits for the previous one to
 * finish, so the turns reach the server in the order they were made.
 */
export class SessionManager {
  readonly client: CallHQClient;
  readonly assistantId: string;
  private readonly options: SessionManagerOptions;
  private current?: Session;
  private sessionIdValue?: string;
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;
  /** the last chat sent through this manager (non-streaming sends) */
  lastChat?: Chat;
  /** the id of the last chat, streamed or not */
  lastChatId?: string;
  /** set by end(): the next send starts a new session */
  private ended = false;

  constructor(options: SessionManagerOptions) {
    this.options = options;
    this.client = options.client;
    this.assistantId = options.assistantId;
    this.sessionIdValue = options.sessionId;
  }

  /** the current session's id (undefined before the first send or start()) */
  get sessionId(): string | undefined {
    return this.sessionIdValue;
  }

  /** the session as the server last returned it (undefined when resumed by id
   *  and not fetched yet) */
  get session(): Session | undefined {
    return this.current;
  }

  /** true while a send or stream runs or waits for its turn */
  get busy(): boolean {
    return this.waiting > 0;
  }

  /** when the current session expires (ms since the epoch), if known */
  get expiresAt(): number | undefined {
    return this.current ? Date.parse(this.current.expiresAt) : undefined;
  }

  /** Creates the session now rather than on the first send. */
  start(options?: RequestOptions): Promise<Session> {
    return this.exclusive(async () => {
      await this.ensureSession(options);
      if (!this.current) this.current = await this.client.sessions.get(this.sessionIdValue!, options);
      return this.current;
    });
  }

  /** Sends one user message and returns the assistant's reply. */
  send(input: string | Message[], options?: RequestOptions): Promise<string> {
    return this.exclusive(async () => {
      const chat = await this.withRenewal(options, (sessionId) =>
        this.client.chats.create({ sessionId, input }, options));
      this.lastChat = chat;
      this.lastChatId = chat.id;
      return chat.output.map((m) => m.content ?? "").join("");
    });
  }

  /**
   * Sends one user message and yields the reply's text as it arrives.
   * Leaving the loop early cuts the stream (the server keeps what arrived,
   * marked incomplete). The turn is taken when the iteration starts.
   */
  async *stream(input: string | Message[],
                options?: RequestOptions): AsyncGenerator<string, StreamResult, undefined> {
    const release = await this.lock();
    try {
      const stream: ChatStream = await this.withRenewal(options, (sessionId) =>
        this.client.chats.stream({ sessionId, input }, options));
      for await (const ev of stream) {
        this.lastChatId = ev.id;
        if (ev.delta) yield ev.delta;
      }
      return { text: stream.text, chatId: stream.chatId, sessionId: this.sessionIdValue! };
    } finally {
      release();
    }
  }

  /** The conversation so far, oldest first ([] before the first send). */
  history(options?: RequestOptions): Promise<Message[]> {
    return this.exclusive(async () => {
      if (!this.sessionIdValue) return [];
      this.current = await this.client.sessions.get(this.sessionIdValue, options);
      return this.current.messages ?? [];
    });
  }

  /**
   * Ends the conversation: marks the session completed (its history stays
   * readable), or deletes it with { delete: true }. A later send starts a
   * new session.
   */
  end(options?: RequestOptions & { delete?: boolean }): Promise<void> {
    return this.exclusive(async () => {
      const id = this.sessionIdValue;
      if (!id) return;
      try {
        if (options?.delete) await this.client.sessions.delete(id, options);
        else this.current = await this.client.sessions.update(id, { status: "completed" }, options);
      } catch (err) {
        // already gone or already over: ended all the same
        if (!(err instanceof CallHQError && (err.statusCode === 404 || err.statusCode === 410))) {
          throw err;
        }
      }
      this.ended = true;
    });
  }

  // -- internals

  private async ensureSession(options?: RequestOptions): Promise<string> {
    if (this.sessionIdValue && !this.ended) return this.sessionIdValue;
    await this.createSession([], options);
    return this.sessionIdValue!;
  }

  private async createSession(messages: Message[], options?: RequestOptions): Promise<Session> {
    const o = this.options;
    const s = await this.client.sessions.create({
      assistantId: this.assistantId,
      name: o.name,
      expirationSeconds: o.expirationSeconds,
      customer: o.customer,
      metadata: o.metadata,
      messages: messages.length > 0 ? messages : undefined,
    }, options);
    this.current = s;
    this.sessionIdValue = s.id;
    this.ended = false;
    return s;
  }

  /** Runs fn with the session's id; on 410, renews the session once and retries. */
  private async withRenewal<T>(options: RequestOptions | undefined,
                               fn: (sessionId: string) => Promise<T>): Promise<T> {
    const sessionId = await this.ensureSession(options);
    try {
      return await fn(sessionId);
    } catch (err) {
      if (!(err instanceof CallHQError && err.statusCode === 410)) throw err;
      await this.renew(sessionId, err.message, options);
      return await fn(this.sessionIdValue!);
    }
  }

  private async renew(previousSessionId: string, reason: string,
                      options?: RequestOptions): Promise<void> {
    let messages: Message[] = [];
    if (this.options.carryOverHistory ?? true) {
      try {
        const old = await this.client.sessions.get(previousSessionId, options);
        messages = (old.messages ?? []).filter((m) => m.role !== "system");
      } catch (err) {
        if (!(err instanceof CallHQError && err.statusCode === 404)) throw err;
      }
    }
    const s = await this.createSession(messages, options);
    this.options.onSessionRenewed?.({
      previousSessionId,
      sessionId: s.id,
      reason,
      carriedMessages: messages.length,
    });
  }

  /** Waits for the previous operation; resolves to the release function. */
  private lock(): Promise<() => void> {
    this.waiting++;
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = () => {
        this.waiting--;
        resolve();
      };
    });
    const previous = this.tail;
    this.tail = previous.then(() => mine);
    let released = false;
    return previous.then(() => () => {
      if (!released) {
        released = true;
        release();
      }
    });
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.lock();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
