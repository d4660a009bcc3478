/**
 * The AWS container-credentials protocol (what ECS / EKS Pod Identity serve), so every AWS
 * SDK and the AWS CLI pick up the stage's credentials through their default chain:
 * `GET <AWS_CONTAINER_CREDENTIALS_FULL_URI>` with header `Authorization: <token>` (raw, no
 * `Bearer`), answered with `{AccessKeyId, SecretAccessKey, Token, Expiration, AccountId?}`.
 * Errors are `{Code, Message}` JSON. See PROTOCOLS.md, "AWS container-credentials endpoint".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Credential } from '../client';

/** The wire body the SDKs parse. `Expiration` must end in `Z` (`+00:00` is rejected). */
export interface AwsContainerCredentialsBody {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly Token: string;
  readonly Expiration: string;
  readonly AccountId?: string;
}

/**
 * Compare a presented token with the expected one in constant time (both are hashed
 * first, so lengths never leak through an early exit either).
 *
 * @example
 * ```ts
 * if (!tokenMatches(req.headers.authorization, expected)) refuse(401);
 * ```
 */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (typeof presented !== 'string' || presented === '') return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Shape one `aws` credential as the container-credentials answer.
 *
 * @example
 * ```ts
 * res.end(JSON.stringify(toAwsContainerCredentials(credential)));
 * ```
 */
export function toAwsContainerCredentials(c: Credential): AwsContainerCredentialsBody {
  const body: AwsContainerCredentialsBody = {
    AccessKeyId: c.values.accessKeyId ?? '',
    SecretAccessKey: c.values.secretAccessKey ?? '',
    Token: c.values.sessionToken ?? '',
    Expiration: toRfc3339Z(c.expiresAt),
    ...(c.meta?.accountId ? { AccountId: c.meta.accountId } : {}),
  };
  return body;
}

/** `2026-01-01T00:00:00Z` (seconds precision, `Z`), whatever ISO form the broker sent. */
export function toRfc3339Z(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Write an AWS-style error; `code` and `message` are fixed strings, never caller input. */
export function sendAwsError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ Code: code, Message: message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** Write the credentials answer. */
export function sendAwsCredentials(_req: IncomingMessage, res: ServerResponse, c: Credential): void {
  const body = JSON.stringify(toAwsContainerCredentials(c));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
