/**
 * Reduce what `@google-cloud/iam-credentials` throws to a coded {@link StagegateError}.
 *
 * Why so careful: in REST mode the client throws a `GaxiosError` whose `message` is the
 * whole response body (Google's text names projects, project numbers and emails) and
 * which carries the whole request config (URL, body, headers). gaxios 7 redacts the
 * `Authorization` header by default, but that is a configurable `errorRedactor`, not a
 * guarantee we own. So the original error is NEVER attached as `cause` and never
 * logged; only its HTTP status, Google's canonical status name (e.g.
 * `PERMISSION_DENIED`) or its gRPC code survive.
 */
import { StagegateError } from '../../sdk/errors';

/** gRPC codes that mean "try again later" (UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE). */
const TRANSIENT_GRPC_CODES = new Set([2, 4, 8, 10, 13, 14]);
const GRPC_CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
] as const;
/** Google canonical status names are SCREAMING_SNAKE; anything else is not trusted into details. */
const STATUS_NAME = /^[A-Z][A-Z_]{1,40}$/;

/** The non-secret facts of a failed call. */
export interface GcpFailure {
  /** HTTP status, when the service answered. */
  readonly httpStatus?: number;
  /** Google's canonical status name from the error body (`PERMISSION_DENIED`). */
  readonly googleStatus?: string;
  /** gRPC code, when the error carries one instead of an HTTP status. */
  readonly grpcCode?: number;
  /** `network`, `timeout`, or `malformed-response` when there was no usable answer. */
  readonly reason?: 'network' | 'timeout' | 'malformed-response';
  readonly transient: boolean;
}

/** Thrown internally when our own per-attempt timer fires first. */
export class GcpCallTimeout extends Error {
  override readonly name = 'GcpCallTimeout';
}

/** Thrown internally when a 200 answer lacks `accessToken` or a readable `expireTime`. */
export class GcpMalformedResponse extends Error {
  override readonly name = 'GcpMalformedResponse';
}

/** Classify any error the client throws, keeping only non-secret facts. */
export function classifyGcpError(err: unknown): GcpFailure {
  if (err instanceof GcpCallTimeout) return { reason: 'timeout', transient: true };
  if (err instanceof GcpMalformedResponse) return { reason: 'malformed-response', transient: false };
  const e = (err ?? {}) as { status?: unknown; code?: unknown; response?: { status?: unknown }; message?: unknown };
  const httpStatus = [e.response?.status, e.status, e.code].find((v): v is number => typeof v === 'number' && v >= 100 && v <= 599);
  if (httpStatus !== undefined) {
    return {
      httpStatus,
      googleStatus: googleStatusFromBody(e.message),
      transient: httpStatus === 408 || httpStatus === 429 || httpStatus >= 500,
    };
  }
  if (typeof e.code === 'number' && e.code >= 0 && e.code < GRPC_CODE_NAMES.length) {
    return { grpcCode: e.code, googleStatus: GRPC_CODE_NAMES[e.code], transient: TRANSIENT_GRPC_CODES.has(e.code) };
  }
  // No status at all: connection refused/reset, DNS, TLS, aborted fetch. The service
  // never answered, so trying again later is right.
  return { reason: 'network', transient: true };
}

/** The coded error for a failure; its message names only the operation and status. */
export function toStagegateError(failure: GcpFailure, context: { operation: string; attempts: number }): StagegateError {
  const what =
    failure.httpStatus !== undefined
      ? `HTTP ${failure.httpStatus}${failure.googleStatus ? ` ${failure.googleStatus}` : ''}`
      : failure.grpcCode !== undefined
        ? `gRPC ${failure.googleStatus ?? failure.grpcCode}`
        : (failure.reason ?? 'network');
  const details: Record<string, unknown> = { provider: 'gcp-iam', operation: context.operation, attempts: context.attempts };
  if (failure.httpStatus !== undefined) details.httpStatus = failure.httpStatus;
  if (failure.googleStatus !== undefined) details.googleStatus = failure.googleStatus;
  if (failure.grpcCode !== undefined) details.grpcCode = failure.grpcCode;
  if (failure.reason !== undefined) details.reason = failure.reason;
  return new StagegateError(
    failure.transient ? 'PROVIDER_UNAVAILABLE' : 'PROVIDER_REJECTED',
    `GCP IAM Credentials ${context.operation} failed: ${what}`,
    { details },
  );
}

/**
 * Google's canonical status from a JSON error body (`{"error":{"status":"…"}}`), which
 * gaxios puts in the error's message. Parsed as JSON and checked against a strict
 * pattern, so no free text from the body can get through.
 */
function googleStatusFromBody(message: unknown): string | undefined {
  if (typeof message !== 'string' || !message.startsWith('{')) return undefined;
  try {
    const status = (JSON.parse(message) as { error?: { status?: unknown } })?.error?.status;
    return typeof status === 'string' && STATUS_NAME.test(status) ? status : undefined;
  } catch {
    return undefined;
  }
}
