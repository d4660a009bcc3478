/**
 * The tamper-evident audit log: each event's hash covers the previous event's hash, so
 * editing, removing or reordering any event breaks every hash after it. Events carry
 * hashes and handles only, never secret material.
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export type AuditEventType =
  | 'stage.opened'
  | 'stage.denied'
  | 'stage.failed'
  | 'stage.closing'
  | 'stage.closed'
  | 'credential.issued'
  | 'credential.issue-failed'
  | 'credential.refreshed'
  | 'credential.revoked'
  | 'credential.revoke-failed';

export interface AuditInput {
  readonly type: AuditEventType;
  readonly stageId?: string | null;
  readonly data: Record<string, unknown>;
}

export interface AuditEvent {
  readonly seq: number;
  /** Unix ms. */
  readonly at: number;
  readonly type: string;
  readonly stageId: string | null;
  readonly data: Record<string, unknown>;
  readonly prevHash: string;
  readonly hash: string;
}

/** Deterministic JSON: object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function hashAuditEvent(prevHash: string, e: Pick<AuditEvent, 'seq' | 'at' | 'type' | 'stageId' | 'data'>): string {
  return createHash('sha256')
    .update(prevHash)
    .update('\n')
    .update(canonicalJson({ seq: e.seq, at: e.at, type: e.type, stageId: e.stageId, data: e.data }))
    .digest('hex');
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly events: number;
  /** Hash of the last event: record it elsewhere to detect truncation of the tail. */
  readonly head: string;
  readonly problem?: { readonly seq: number; readonly reason: 'hash-mismatch' | 'chain-broken' | 'sequence-gap' };
}

/** Walk events in stored order and recompute the chain. */
export function verifyAuditChain(events: Iterable<AuditEvent>): AuditVerification {
  let prev = GENESIS_HASH;
  let expectedSeq = 1;
  let count = 0;
  for (const e of events) {
    if (e.seq !== expectedSeq) return { ok: false, events: count, head: prev, problem: { seq: e.seq, reason: 'sequence-gap' } };
    if (e.prevHash !== prev) return { ok: false, events: count, head: prev, problem: { seq: e.seq, reason: 'chain-broken' } };
    if (hashAuditEvent(prev, e) !== e.hash) return { ok: false, events: count, head: prev, problem: { seq: e.seq, reason: 'hash-mismatch' } };
    prev = e.hash;
    expectedSeq++;
    count++;
  }
  return { ok: true, events: count, head: prev };
}
