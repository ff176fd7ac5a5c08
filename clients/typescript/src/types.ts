// The shapes of the CallHQ chat-session API (see the API contract).
// Only the fields a client reads or writes; the server may send more.

export type Role = "system" | "user" | "assistant" | "tool";

export interface Message {
  role: Role | (string & {});
  content: string | null;
}

export interface Customer {
  number?: string;
  name?: string;
  email?: string;
  externalId?: string;
}

export interface AssistantModel {
  provider?: string;
  model?: string;
  /** system prompt(s) put in front of every conversation */
  messages?: Message[];
  temperature?: number;
  maxTokens?: number;
}

export interface AssistantServer {
  url?: string;
  secret?: string;
  headers?: Record<string, string>;
  timeoutSeconds?: number;
}

export interface AssistantFields {
  name?: string;
  model?: AssistantModel;
  firstMessage?: string;
  server?: AssistantServer;
  serverMessages?: string[];
  metadata?: Record<string, unknown>;
}

export interface Assistant extends AssistantFields {
  id: string;
  orgId: string;
  createdAt: string;
  updatedAt: string;
}

export type SessionStatus = "active" | "completed";

export interface CreateSession {
  name?: string;
  assistantId?: string;
  assistant?: AssistantFields;
  expirationSeconds?: number;
  status?: SessionStatus;
  messages?: Message[];
  customer?: Customer;
  metadata?: Record<string, unknown>;
}

export interface UpdateSession {
  name?: string;
  status?: SessionStatus;
  expirationSeconds?: number;
  messages?: Message[];
}

export interface Session {
  id: string;
  orgId: string;
  name?: string;
  status: SessionStatus;
  expirationSeconds: number;
  expiresAt: string;
  assistantId?: string;
  /** the history, oldest first (GET /session/{id}; not in list rows) */
  messages?: Message[];
  customer?: Customer;
  metadata?: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** POST /chat: exactly one of sessionId, previousChatId or an assistant. */
export interface CreateChat {
  input: string | Message[];
  sessionId?: string;
  previousChatId?: string;
  assistantId?: string;
  assistant?: AssistantFields;
  customer?: Customer;
  name?: string;
  metadata?: Record<string, unknown>;
}

export interface Chat {
  id: string;
  orgId: string;
  assistantId?: string;
  sessionId?: string;
  previousChatId?: string;
  name?: string;
  input: string | Message[];
  /** the context the model saw: system prompt, history, input */
  messages: Message[];
  output: Message[];
  /** extension: "incomplete" when the reply was cut short */
  status?: "completed" | "incomplete";
  /** extension: when the model reported token usage */
  usage?: { promptTokens: number; completionTokens: number };
  createdAt: string;
  updatedAt: string;
}

/** One event of a streamed chat (`stream: true`). */
export interface ChatStreamEvent {
  id: string;
  sessionId?: string;
  path: string;
  delta: string;
}

export interface ListQuery {
  page?: number;
  limit?: number;
  sortOrder?: "ASC" | "DESC";
  [filter: string]: string | number | undefined;
}

export interface Page<T> {
  results: T[];
  metadata: {
    itemsPerPage: number;
    totalItems: number;
    currentPage: number;
    totalPages: number;
    hasNextPage: boolean;
    sortOrder: "ASC" | "DESC";
  };
}
