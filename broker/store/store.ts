/**
 * The broker's store: stages, grant handles, the revocation queue, install locks and
 * the audit chain. SQLite is the embedded default; PostgreSQL (HA) implements the same
 * interface. Nothing here ever holds credential material: handles, digests, times.
 */
import type { CredentialKind, Handle, RevocationMethod } from '../../providers/provider';
import type { AuditEvent, AuditInput } from '../audit/audit-chain';

export type StageState = 'opening' | 'open' | 'closing' | 'closed' | 'failed';
export type GrantState = 'intent' | 'issued' | 'revoking' | 'revoked';
export type CloseReason = 'exit' | 'heartbeat-lapsed' | 'ttl-expired' | 'issue-failed' | 'crash-recovery';

export interface StageRecord {
  readonly id: string;
  readonly build: string;
  readonly stage: string;
  readonly phase: 'run' | 'install';
  readonly rule: string;
  readonly issuer: string;
  readonly state: StageState;
  readonly tokenSha256: string;
  readonly identitySha256: string;
  /** All times are Unix milliseconds. */
  readonly openedAt: number;
  readonly expiresAt: number;
  readonly maxExpiresAt: number;
  readonly heartbeatSeconds: number;
  readonly lastHeartbeatAt: number;
  readonly closedAt: number | null;
  readonly closeReason: CloseReason | null;
  readonly exitCode: number | null;
}

export interface GrantRecord {
  readonly stageId: string;
  readonly name: string;
  readonly provider: string;
  readonly state: GrantState;
  readonly intent: Handle;
  readonly issued: Handle | null;
  readonly kind: CredentialKind | null;
  readonly revocation: RevocationMethod | null;
  readonly expiresAt: number | null;
  readonly refreshAt: number | null;
  readonly attempts: number;
  readonly nextAttemptAt: number | null;
  readonly claimedUntil: number | null;
  readonly lastErrorCode: string | null;
  readonly revokedAt: number | null;
  readonly effectiveAt: number | null;
  readonly method: RevocationMethod | null;
}

export interface NewStage {
  readonly stage: Omit<StageRecord, 'state' | 'closedAt' | 'closeReason' | 'exitCode'>;
  readonly grants: ReadonlyArray<{ readonly name: string; readonly provider: string; readonly intent: Handle }>;
  /** A stage that opens once per build: a second open is STAGE_ALREADY_RAN. */
  readonly once: boolean;
  /** Only after an install phase of the build closed cleanly (exit code 0). */
  readonly requireCleanInstall: boolean;
  readonly audit: readonly AuditInput[];
}

export interface IssuedRecord {
  readonly handle: Handle;
  readonly kind: CredentialKind;
  readonly revocation: RevocationMethod;
  readonly expiresAt: number;
  readonly refreshAt: number | null;
}

export type RevocationOutcome =
  | { readonly grant: string; readonly ok: true; readonly method: RevocationMethod; readonly at: number; readonly effectiveAt: number; readonly audit: AuditInput }
  | { readonly grant: string; readonly ok: false; readonly errorCode: string; readonly nextAttemptAt: number; readonly audit: AuditInput };

export interface Store {
  /**
   * Atomically: check the build's install lock / run stages / once slot, then insert the
   * stage (state `opening`), one `intent` per grant, and the audit events.
   * Throws STAGE_ALREADY_RAN, INSTALL_PHASE_OPEN, RUN_STAGE_OPEN or INSTALL_PHASE_REQUIRED.
   */
  createStage(input: NewStage): Promise<void>;
  /** False when the grant is no longer an `intent` (the stage was reaped meanwhile). */
  recordIssued(stageId: string, grant: string, issued: IssuedRecord, audit: readonly AuditInput[]): Promise<boolean>;
  /**
   * In one transaction: record every issued handle and move the stage `opening` → `open`.
   * False, with nothing written, when the stage is no longer `opening` (reaped meanwhile).
   */
  recordOpened(stageId: string, issued: ReadonlyArray<{ readonly grant: string; readonly record: IssuedRecord }>, audit: readonly AuditInput[]): Promise<boolean>;
  /**
   * Start closing a stage that is `opening`/`open`: the stage moves to `closing` (or
   * `failed` for `issue-failed`), its `intent`/`issued` grants to `revoking`, claimed by
   * the caller until `claimUntil`. Returns the claimed grants, or undefined when the stage
   * was not opening/open (someone else is closing it, or it is closed).
   */
  beginClose(
    stageId: string,
    reason: CloseReason,
    exitCode: number | null,
    now: number,
    claimUntil: number,
    audit: readonly AuditInput[],
  ): Promise<{ stage: StageRecord; grants: GrantRecord[] } | undefined>;
  /**
   * In one transaction: record the outcome of each revocation attempt of one stage (with
   * its audit event), then, if no grant is left to revoke, move `closing` → `closed` with
   * `closedAudit`. Returns the stage's state afterwards. Safe to call with no outcomes.
   */
  recordRevocations(stageId: string, outcomes: readonly RevocationOutcome[], closedAudit: AuditInput): Promise<StageState | undefined>;
  /** Extend an `open` stage. Returns the updated record, or undefined if not open. */
  heartbeat(stageId: string, now: number, expiresAt: number): Promise<StageRecord | undefined>;
  /** False (and no audit) when the grant is no longer `issued` (the stage closed meanwhile). */
  recordRefreshed(stageId: string, grant: string, issued: IssuedRecord, audit: readonly AuditInput[]): Promise<boolean>;
  getStage(stageId: string): Promise<StageRecord | undefined>;
  getGrants(stageId: string): Promise<GrantRecord[]>;
  isInstallOpen(build: string): Promise<boolean>;
  /** Open stages whose heartbeat lapsed or TTL ended, and `opening` stages older than `staleOpeningBefore`. */
  findLapsed(now: number, staleOpeningBefore: number, limit: number): Promise<StageRecord[]>;
  /** Claim `revoking` grants that are due and not claimed by anyone else. */
  claimDueRevocations(now: number, claimUntil: number, limit: number): Promise<GrantRecord[]>;
  /** Stages in `closing` whose grants are all revoked (to finish after a crash). */
  findFinishable(limit: number): Promise<string[]>;
  appendAudit(events: readonly AuditInput[]): Promise<void>;
  readAudit(afterSeq: number, limit: number): Promise<AuditEvent[]>;
  /** Counts for metrics/readiness. */
  counts(): Promise<{ openStages: number; pendingRevocations: number }>;
  close(): Promise<void>;
}
