export { CallHQClient, ChatStream } from "./client.js";
export type { CallHQClientOptions, RequestOptions } from "./client.js";
export { CallHQError, SessionLimitError } from "./errors.js";
export { SessionManager } from "./session-manager.js";
export type {
  SessionManagerOptions, SessionRenewedEvent, StreamResult,
} from "./session-manager.js";
export { MultiSessionManager } from "./multi-session-manager.js";
export type { MultiSessionManagerOptions, SessionSpec } from "./multi-session-manager.js";
export { parseSSE } from "./sse.js";
export type { SSEEvent } from "./sse.js";
export type * from "./types.js";
