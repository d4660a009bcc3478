/**
 * The non-secret handles of the `gcp-iam` provider (stored by the broker, audited).
 *
 * GCP access tokens cannot be revoked, so the handles carry what revocation needs:
 * WHEN the last token dies. The intent (write-ahead, before minting) carries the latest
 * expiry the first mint may produce; the issued handle carries the expiry Google
 * actually reported for the latest token, and the stage's absolute end as a bound.
 * A token appears only as a sha256 prefix, to correlate with audit events.
 */
import { createHash } from 'node:crypto';
import type { Handle } from '../provider';

/** Handle format version, so a future change can still read rows written today. */
const HANDLE_VERSION = 1;

export interface GcpIamIntentHandle {
  readonly v: number;
  readonly serviceAccountEmail: string;
  /** ISO time: the first token is asked for a lifetime that ends no later than this (the crash backstop). */
  readonly notAfter: string;
  /** ISO time: the stage's max expiry; no token of this stage is ever minted to outlive it. */
  readonly stageMaxExpiresAt: string;
}

export interface GcpIamIssuedHandle {
  readonly v: number;
  readonly serviceAccountEmail: string;
  readonly scopes: string[];
  /** ISO time Google reported for the latest token (`expireTime`). */
  readonly expiresAt: string;
  /** ISO time the latest token was minted (broker clock). */
  readonly issuedAt: string;
  /** How many tokens this credential has minted (1 + refreshes). */
  readonly mints: number;
  /** First 16 hex of sha256(latest access token): correlates logs and audit without the token. */
  readonly tokenSha256: string;
  readonly stageMaxExpiresAt: string;
}

export function buildIntentHandle(h: Omit<GcpIamIntentHandle, 'v'>): Handle {
  return { v: HANDLE_VERSION, ...h };
}

export function buildIssuedHandle(h: Omit<GcpIamIssuedHandle, 'v'>): Handle {
  return { v: HANDLE_VERSION, ...h, scopes: [...h.scopes] };
}

/** sha256 prefix of a token, for handles and logs. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}

/** A time field of a stored handle, or undefined if absent or unreadable. */
export function handleTime(handle: Handle | undefined, field: string): Date | undefined {
  const v = handle?.[field];
  if (typeof v !== 'string') return undefined;
  const ms = Date.parse(v);
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

/** A positive integer field of a stored handle, or undefined. */
export function handleCount(handle: Handle | undefined, field: string): number | undefined {
  const v = handle?.[field];
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}
