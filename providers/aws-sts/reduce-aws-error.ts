/**
 * Reduce whatever the AWS SDK (or the network) threw to a coded `StagegateError`.
 *
 * AWS error messages routinely carry ARNs and account ids ("User: arn:aws:sts::1234…
 * is not authorized to perform sts:AssumeRole on resource: arn:aws:iam::…"), so the
 * message and the SDK error are dropped entirely — not even kept as `cause`, because
 * pino's error serializer prints causes. Only the error code (checked against a strict
 * pattern), the HTTP status and the operation name survive.
 */
import { StagegateError } from '../../sdk/errors';

/** Error codes AWS uses for "try again later" that do not come with a 5xx status. */
const TRANSIENT_CODES = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'IDPCommunicationError',
]);

/** Node network error codes: the endpoint could not be reached at all. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

const SAFE_CODE = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** The AWS error code of an SDK error, or a safe placeholder. Never text from the message. */
export function awsErrorCode(err: unknown): string {
  const e = (err ?? {}) as SdkErrorShape;
  for (const candidate of [e.code, e.name]) {
    if (typeof candidate === 'string' && SAFE_CODE.test(candidate) && candidate !== 'Error') return candidate;
  }
  return 'UnknownError';
}

/** HTTP status of an SDK error, if the service answered at all. */
export function awsHttpStatus(err: unknown): number | undefined {
  const status = ((err ?? {}) as SdkErrorShape).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * `PROVIDER_UNAVAILABLE` for outages, throttling, 5xx, timeouts and network failures
 * (the reaper retries those); `PROVIDER_REJECTED` for every other answer (4xx: the cloud
 * said no). The message is `aws <operation> failed: <Code>`.
 */
export function reduceAwsError(err: unknown, operation: string): StagegateError {
  if (err instanceof StagegateError) return err;
  const code = awsErrorCode(err);
  const status = awsHttpStatus(err);
  const e = (err ?? {}) as SdkErrorShape;
  const transient =
    status === undefined ||
    status >= 500 ||
    status === 408 ||
    status === 429 ||
    e.$fault === 'server' ||
    TRANSIENT_CODES.has(code) ||
    NETWORK_CODES.has(code);
  const details: Record<string, string | number> = { operation, awsCode: code };
  if (status !== undefined) details.httpStatus = status;
  return new StagegateError(transient ? 'PROVIDER_UNAVAILABLE' : 'PROVIDER_REJECTED', `aws ${operation} failed: ${code}`, { details });
}
