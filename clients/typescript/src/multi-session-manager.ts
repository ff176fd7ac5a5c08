import type { CallHQClient, RequestOptions } from "./client.js";
import { SessionLimitError } from "./errors.js";
import {
  SessionManager, type SessionRenewedEvent, type StreamResult,
} from "./session-manager.js";
import type { Customer, Message } from "./types.js";

/** How the session of a new key is made. */
export interface SessionSpec {
  assistantId: string;
  name?: string;
  expirationSeconds?: number;
  customer?: Customer;
  metadata?: Record<string, unknown>;
}

export interface MultiSessionManagerOptions<K> {
  client: CallHQClient;
  /** the session for a key seen for the first time */
  sessionFor: (key: K) => SessionSpec;
  /** most conversations open at once (default 1000); at the cap, the least
   *  recently used idle one is ended to make room */
  maxSessions?: number;
  /** end an evicted conversation's session on the server (status
   *  completed) rather than leave it to expire (default true) */
  endEvicted?: boolean;
  /** run cleanup() this often, in ms (default 60000; 0: never by itself) */
  cleanupIntervalMs?: number;
  /** see SessionManagerOptions.carryOverHistory (default true) */
  carryOverHistory?: boolean;
  onSessionRenewed?: (key: K, event: SessionRenewedEvent) => void;
  /** a conversation was dropped to make room (sessionId undefined when it
   *  had not created its session yet) */
  onSessionEvicted?: (key: K, sessionId: string | undefined) => void;
  /** the clock (ms since the epoch); for tests */
  now?: () => number;
}

/**
 * Many concurrent conversations, keyed by the application's own key (a
 * user id, a topic, an assistant name...). A key's SessionManager and its
 * session are created on first use; sends of one key are serialised while
 * different keys run concurrently; expired sessions are dropped by
 * cleanup(), and at most maxSessions are kept open.
 */
export class MultiSessionManager<K = string> {
  private readonly options: MultiSessionManagerOptions<K>;
  /** insertion order = least recently used first */
  private readonly managers = new Map<K, SessionManager>();
  private readonly timer?: ReturnType<typeof setInterval>;
  readonly maxSessions: number;

  constructor(options: MultiSessionManagerOptions<K>) {
    this.options = options;
    this.maxSessions = options.maxSessions ?? 1000;
    if (this.maxSessions < 1) throw new RangeError("maxSessions must be at least 1");
    const every = options.cleanupIntervalMs ?? 60_000;
    if (every > 0) {
      this.timer = setInterval(() => void this.cleanup().catch(() => undefined), every);
      // never keep a Node process alive for this alone
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  /** how many conversations are open */
  get size(): number {
    return this.managers.size;
  }

  keys(): K[] {
    return [...this.managers.keys()];
  }

  has(key: K): boolean {
    return this.managers.has(key);
  }

  /** the key's SessionManager, if the key is open */
  get(key: K): SessionManager | undefined {
    return this.managers.get(key);
  }

  /** Sends one message in the key's conversation; returns the reply. */
  send(key: K, input: string | Message[], options?: RequestOptions): Promise<string> {
    try {
      return this.acquire(key).send(input, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Streams the reply of one message in the key's conversation. */
  async *stream(key: K, input: string | Message[],
                options?: RequestOptions): AsyncGenerator<string, StreamResult, undefined> {
    return yield* this.acquire(key).stream(input, options);
  }

  /** The key's conversation so far ([] for a key not open). */
  async history(key: K, options?: RequestOptions): Promise<Message[]> {
    const manager = this.managers.get(key);
    return manager ? manager.history(options) : [];
  }

  /** Ends the key's conversation (see SessionManager.end) and forgets it. */
  async end(key: K, options?: RequestOptions & { delete?: boolean }): Promise<void> {
    const manager = this.managers.get(key);
    if (!manager) return;
    this.managers.delete(key);
    await manager.end(options);
  }

  /**
   * Forgets the conversations whose session has expired and that are idle;
   * returns their keys. (A conversation used again after its session
   * expired but before cleanup gets a new session through the 410 path.)
   */
  async cleanup(): Promise<K[]> {
    return this.sweep();
  }

  /** Stops the cleanup timer; with { end: true } ends every conversation. */
  async close(options?: { end?: boolean }): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (options?.end) {
      const all = [...this.managers.keys()];
      await Promise.allSettled(all.map((k) => this.end(k)));
    }
    this.managers.clear();
  }

  private sweep(): K[] {
    const now = (this.options.now ?? Date.now)();
    const removed: K[] = [];
    for (const [key, manager] of this.managers) {
      const expiresAt = manager.expiresAt;
      if (!manager.busy && expiresAt !== undefined && expiresAt <= now) {
        this.managers.delete(key);
        removed.push(key);
      }
    }
    return removed;
  }

  // Synchronous, so that two sends of a new key never make two managers.
  private acquire(key: K): SessionManager {
    let manager = this.managers.get(key);
    if (manager) {
      // most recently used goes last
      this.managers.delete(key);
      this.managers.set(key, manager);
      return manager;
    }
    if (this.managers.size >= this.maxSessions) this.sweep();
    while (this.managers.size >= this.maxSessions) this.evictOne();
    manager = new SessionManager({
      client: this.options.client,
      ...this.options.sessionFor(key),
      carryOverHistory: this.options.carryOverHistory,
      onSessionRenewed: (event) => this.options.onSessionRenewed?.(key, event),
    });
    this.managers.set(key, manager);
    return manager;
  }

  private evictOne(): void {
    for (const [key, manager] of this.managers) {
      if (manager.busy) continue;
      this.managers.delete(key);
      const sessionId = manager.sessionId;
      this.options.onSessionEvicted?.(key, sessionId);
      if (sessionId && (this.options.endEvicted ?? true)) {
        // in the background, best effort: the session expires by itself anyway
        manager.end().catch(() => undefined);
      }
      return;
    }
    throw new SessionLimitError(this.maxSessions);
  }
}
