/**
 * An error answer of the API (`{statusCode, error, message}`), or a request
 * that got no answer: statusCode 0 for a network failure, and for a time-out
 * or an abort (then `error` says which).
 */
export class CallHQError extends Error {
  override readonly name = "CallHQError";
  /** HTTP status (400, 401, 404, 409, 410, 413, 502, 503, ...), 0 without an answer */
  readonly statusCode: number;
  /** the status text ("Not Found"), or "Network Error" / "Timeout" / "Aborted" */
  readonly error: string;
  /** the parsed error body, when there was one */
  readonly body?: unknown;

  constructor(statusCode: number, error: string, message: string,
              options?: { body?: unknown; cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.statusCode = statusCode;
    this.error = error;
    this.body = options?.body;
  }

  /** 410: the session expired or was completed; a new one is needed */
  get isGone(): boolean {
    return this.statusCode === 410;
  }
}

/** MultiSessionManager: every open session is busy and none may be evicted. */
export class SessionLimitError extends Error {
  override readonly name = "SessionLimitError";
  readonly limit: number;

  constructor(limit: number) {
    super(`all ${limit} sessions are busy; raise maxSessions or retry later`);
    this.limit = limit;
  }
}

/** Reads an error answer into a CallHQError. */
export async function errorFromResponse(res: Response): Promise<CallHQError> {
  const text = await res.text().catch(() => "");
  let body: unknown = undefined;
  let message = text.trim() || `HTTP ${res.status}`;
  let error = res.statusText || `HTTP ${res.status}`;
  try {
    body = JSON.parse(text);
    const b = body as { message?: unknown; error?: unknown };
    if (typeof b.message === "string") message = b.message;
    else if (Array.isArray(b.message)) message = b.message.join("; ");
    if (typeof b.error === "string") error = b.error;
  } catch {
    // not JSON (a proxy's HTML page, say): keep the text
  }
  return new CallHQError(res.status, error, message, { body });
}
