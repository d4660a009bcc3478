/**
 * The one coded error of stagegate. The broker throws it, the HTTP layer maps its
 * `code` to a status with {@link httpStatusFor}, and the SDK turns an error body back
 * into the same class, so `err.code` means the same thing on both sides of the wire.
 *
 * Messages must never contain secret material (tokens, credentials, keys): they are
 * shown to callers and written to logs. Put non-secret facts in `details`.
 */

/** The closed set of error codes. Extend, never rename: callers branch on these. */
export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'POLICY_DENIED',
  'PROVENANCE_FAILED',
  'INSTALL_PHASE_OPEN',
  'INSTALL_PHASE_REQUIRED',
  'STAGE_ALREADY_RAN',
  'RUN_STAGE_OPEN',
  'STAGE_NOT_FOUND',
  'STAGE_CLOSED',
  'INVALID_REQUEST',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'PROVIDER_UNAVAILABLE',
  'PROVIDER_REJECTED',
  'CONFIG_INVALID',
  'BROKER_UNAVAILABLE',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const STATUS: Record<ErrorCode, number> = {
  UNAUTHENTICATED: 401,
  POLICY_DENIED: 403,
  PROVENANCE_FAILED: 403,
  INSTALL_PHASE_OPEN: 409,
  INSTALL_PHASE_REQUIRED: 409,
  STAGE_ALREADY_RAN: 409,
  RUN_STAGE_OPEN: 409,
  STAGE_NOT_FOUND: 404,
  STAGE_CLOSED: 409,
  INVALID_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PROVIDER_UNAVAILABLE: 503,
  PROVIDER_REJECTED: 502,
  CONFIG_INVALID: 500,
  BROKER_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** HTTP status for an error code. */
export function httpStatusFor(code: ErrorCode): number {
  return STATUS[code];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** JSON-safe, non-secret facts about an error (rule names, claim names, paths, digests). */
export type ErrorDetails = Record<string, unknown>;

export class StagegateError extends Error {
  override readonly name = 'StagegateError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetails; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  get status(): number {
    return httpStatusFor(this.code);
  }

  /** The wire form: `{ error: { code, message, details } }`. */
  toJSON(): { error: { code: ErrorCode; message: string; details: ErrorDetails } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }

  /** Rebuild an error from a wire body; anything unrecognisable becomes INTERNAL. */
  static fromBody(status: number, body: unknown): StagegateError {
    const e = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
    if (e && isErrorCode(e.code)) {
      const details = e.details && typeof e.details === 'object' ? (e.details as ErrorDetails) : {};
      return new StagegateError(e.code, typeof e.message === 'string' ? e.message : e.code, { details });
    }
    const code: ErrorCode = status === 401 ? 'UNAUTHENTICATED' : status >= 500 ? 'BROKER_UNAVAILABLE' : 'INTERNAL';
    return new StagegateError(code, `broker answered HTTP ${status} without a stagegate error body`, { details: { status } });
  }
}

export function isStagegateError(err: unknown, code?: ErrorCode): err is StagegateError {
  return err instanceof StagegateError && (code === undefined || err.code === code);
}
