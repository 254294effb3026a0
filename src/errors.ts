// Error types that decide how an error is reported: the server's HTTP status and the CLI's exit
// code come from the type, never from the message text.

/** The request or the options asked for something wrong or unsupported (HTTP 400, exit code 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A backend (a library, a device) could not be used (HTTP 500, exit code 1). */
export class BackendError extends Error {
  override name = "BackendError";
}

/** An error's type as a name, for crossing a thread: a structured clone keeps no class. */
export type ErrorKind = "usage" | "backend" | "internal";

export function errorKind(e: unknown): ErrorKind {
  return e instanceof UsageError ? "usage" : e instanceof BackendError ? "backend" : "internal";
}

/** The error again, of its type, on the other side of the thread boundary. */
export function errorOfKind(kind: ErrorKind, message: string): Error {
  return kind === "usage" ? new UsageError(message) : kind === "backend" ? new BackendError(message) : new Error(message);
}
