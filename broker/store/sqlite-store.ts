/**
 * The embedded default store: one SQLite file in WAL mode through better-sqlite3
 * (synchronous, the fastest SQLite binding for Node; chosen over @libsql/client and
 * WASM builds because the store is on the hot path of every open and close — see
 * docs/benchmarks.md). One broker process owns the file; `stagegate audit verify` may
 * read it concurrently (WAL readers do not block the writer).
 *
 * Every multi-row change runs in one IMMEDIATE transaction, so check-then-insert (the
 * install lock, the once-per-build slot) is atomic.
 */
import Database from 'better-sqlite3';
import { StagegateError } from '../../sdk/errors';
import type { CredentialKind, Handle, RevocationMethod } from '../../providers/provider';
import { GENESIS_HASH, hashAuditEvent, type AuditEvent, type AuditInput } from '../audit/audit-chain';
import type { CloseReason, GrantRecord, IssuedRecord, NewStage, RevocationOutcome, StageRecord, StageState, Store } from './store';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE stages (
     id TEXT PRIMARY KEY,
     build TEXT NOT NULL,
     stage TEXT NOT NULL,
     phase TEXT NOT NULL,
     rule TEXT NOT NULL,
     issuer TEXT NOT NULL,
     state TEXT NOT NULL,
     once_slot TEXT UNIQUE,
     token_sha256 TEXT NOT NULL,
     identity_sha256 TEXT NOT NULL,
     opened_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     max_expires_at INTEGER NOT NULL,
     heartbeat_seconds INTEGER NOT NULL,
     last_heartbeat_at INTEGER NOT NULL,
     closed_at INTEGER,
     close_reason TEXT,
     exit_code INTEGER);
   CREATE INDEX stages_build ON stages(build, phase, state);
   CREATE INDEX stages_live ON stages(state, last_heartbeat_at) WHERE state IN ('opening', 'open');
   CREATE TABLE grants (
     stage_id TEXT NOT NULL REFERENCES stages(id),
     name TEXT NOT NULL,
     provider TEXT NOT NULL,
     state TEXT NOT NULL,
     intent TEXT NOT NULL,
     issued TEXT,
     kind TEXT,
     revocation TEXT,
     expires_at INTEGER,
     refresh_at INTEGER,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER,
     claimed_until INTEGER,
     last_error_code TEXT,
     revoked_at INTEGER,
     effective_at INTEGER,
     method TEXT,
     PRIMARY KEY (stage_id, name));
   CREATE INDEX grants_due ON grants(next_attempt_at) WHERE state = 'revoking';
   CREATE TABLE audit (
     seq INTEGER PRIMARY KEY,
     at INTEGER NOT NULL,
     type TEXT NOT NULL,
     stage_id TEXT,
     data TEXT NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL);`,
];

interface StageRow {
  id: string; build: string; stage: string; phase: 'run' | 'install'; rule: string; issuer: string; state: StageState;
  token_sha256: string; identity_sha256: string; opened_at: number; expires_at: number; max_expires_at: number;
  heartbeat_seconds: number; last_heartbeat_at: number; closed_at: number | null; close_reason: CloseReason | null; exit_code: number | null;
}
interface GrantRow {
  stage_id: string; name: string; provider: string; state: GrantRecord['state']; intent: string; issued: string | null;
  kind: CredentialKind | null; revocation: RevocationMethod | null; expires_at: number | null; refresh_at: number | null; attempts: number;
  next_attempt_at: number | null; claimed_until: number | null; last_error_code: string | null; revoked_at: number | null;
  effective_at: number | null; method: RevocationMethod | null;
}

const toStage = (r: StageRow): StageRecord => ({
  id: r.id, build: r.build, stage: r.stage, phase: r.phase, rule: r.rule, issuer: r.issuer, state: r.state,
  tokenSha256: r.token_sha256, identitySha256: r.identity_sha256, openedAt: r.opened_at, expiresAt: r.expires_at,
  maxExpiresAt: r.max_expires_at, heartbeatSeconds: r.heartbeat_seconds, lastHeartbeatAt: r.last_heartbeat_at,
  closedAt: r.closed_at, closeReason: r.close_reason, exitCode: r.exit_code,
});
const toGrant = (r: GrantRow): GrantRecord => ({
  stageId: r.stage_id, name: r.name, provider: r.provider, state: r.state, intent: JSON.parse(r.intent) as Handle,
  issued: r.issued === null ? null : (JSON.parse(r.issued) as Handle), kind: r.kind, revocation: r.revocation,
  expiresAt: r.expires_at, refreshAt: r.refresh_at, attempts: r.attempts, nextAttemptAt: r.next_attempt_at,
  claimedUntil: r.claimed_until, lastErrorCode: r.last_error_code, revokedAt: r.revoked_at, effectiveAt: r.effective_at, method: r.method,
});

export interface SqliteStoreOptions {
  /** File path, or `:memory:`. */
  readonly path: string;
  /** Clock for audit timestamps (ms). */
  readonly now?: () => number;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly s: Record<string, Database.Statement>;
  private queue: Array<{ fn: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
  private flushScheduled = false;

  constructor(options: SqliteStoreOptions) {
    this.now = options.now ?? Date.now;
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: durable against process crashes (what the reaper must survive);
    // a power loss may drop the last transactions, never corrupt the file.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    const p = (sql: string) => this.db.prepare(sql);
    this.s = {
      installOpen: p(`SELECT 1 FROM stages WHERE build = ? AND phase = 'install' AND state IN ('opening','open','closing') LIMIT 1`),
      runOpen: p(`SELECT 1 FROM stages WHERE build = ? AND phase = 'run' AND state IN ('opening','open','closing') LIMIT 1`),
      cleanInstall: p(`SELECT 1 FROM stages WHERE build = ? AND phase = 'install' AND state = 'closed' AND close_reason = 'exit' AND exit_code = 0 LIMIT 1`),
      onceTaken: p(`SELECT 1 FROM stages WHERE once_slot = ?`),
      insertStage: p(`INSERT INTO stages (id, build, stage, phase, rule, issuer, state, once_slot, token_sha256, identity_sha256,
        opened_at, expires_at, max_expires_at, heartbeat_seconds, last_heartbeat_at)
        VALUES (@id, @build, @stage, @phase, @rule, @issuer, 'opening', @onceSlot, @tokenSha256, @identitySha256,
        @openedAt, @expiresAt, @maxExpiresAt, @heartbeatSeconds, @lastHeartbeatAt)`),
      insertGrant: p(`INSERT INTO grants (stage_id, name, provider, state, intent) VALUES (?, ?, ?, 'intent', ?)`),
      recordIssued: p(`UPDATE grants SET state = 'issued', issued = @issued, kind = @kind, revocation = @revocation,
        expires_at = @expiresAt, refresh_at = @refreshAt WHERE stage_id = @stageId AND name = @name AND state = 'intent'`),
      recordRefreshed: p(`UPDATE grants SET issued = @issued, expires_at = @expiresAt, refresh_at = @refreshAt
        WHERE stage_id = @stageId AND name = @name AND state = 'issued'`),
      markOpen: p(`UPDATE stages SET state = 'open' WHERE id = ? AND state = 'opening'`),
      getStage: p(`SELECT * FROM stages WHERE id = ?`),
      getGrants: p(`SELECT * FROM grants WHERE stage_id = ? ORDER BY rowid`),
      closeStage: p(`UPDATE stages SET state = @state, closed_at = @now, close_reason = @reason, exit_code = @exitCode,
        once_slot = CASE WHEN @state = 'failed' THEN NULL ELSE once_slot END
        WHERE id = @id AND state IN ('opening','open')`),
      claimStageGrants: p(`UPDATE grants SET state = 'revoking', claimed_until = @claimUntil, next_attempt_at = @now
        WHERE stage_id = @id AND state IN ('intent','issued')`),
      claimedGrants: p(`SELECT * FROM grants WHERE stage_id = ? AND state = 'revoking' ORDER BY rowid`),
      recordRevoked: p(`UPDATE grants SET state = 'revoked', method = @method, revoked_at = @at, effective_at = @effectiveAt,
        claimed_until = NULL, next_attempt_at = NULL WHERE stage_id = @stageId AND name = @name AND state = 'revoking'`),
      recordRevokeFailed: p(`UPDATE grants SET attempts = attempts + 1, last_error_code = @code, next_attempt_at = @next,
        claimed_until = NULL WHERE stage_id = @stageId AND name = @name AND state = 'revoking'`),
      pendingForStage: p(`SELECT COUNT(*) AS n FROM grants WHERE stage_id = ? AND state <> 'revoked'`),
      finishClose: p(`UPDATE stages SET state = 'closed' WHERE id = ? AND state = 'closing'`),
      heartbeat: p(`UPDATE stages SET last_heartbeat_at = @now, expires_at = @expiresAt WHERE id = @id AND state = 'open'`),
      lapsed: p(`SELECT * FROM stages WHERE (state = 'open' AND (last_heartbeat_at + heartbeat_seconds * 1000 < @now OR expires_at < @now))
        OR (state = 'opening' AND opened_at < @stale) LIMIT @limit`),
      due: p(`SELECT * FROM grants WHERE state = 'revoking' AND next_attempt_at <= @now
        AND (claimed_until IS NULL OR claimed_until < @now) ORDER BY next_attempt_at LIMIT @limit`),
      claimOne: p(`UPDATE grants SET claimed_until = @claimUntil WHERE stage_id = @stageId AND name = @name AND state = 'revoking'`),
      finishable: p(`SELECT s.id FROM stages s WHERE s.state = 'closing'
        AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.stage_id = s.id AND g.state <> 'revoked') LIMIT ?`),
      lastAudit: p(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`),
      insertAudit: p(`INSERT INTO audit (seq, at, type, stage_id, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      readAudit: p(`SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`),
      openCount: p(`SELECT COUNT(*) AS n FROM stages WHERE state IN ('opening','open')`),
      pendingCount: p(`SELECT COUNT(*) AS n FROM grants WHERE state = 'revoking'`),
    };
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  /** Append audit events inside the caller's transaction (reads the chain head under the write lock). */
  private audit(events: readonly AuditInput[]): void {
    if (events.length === 0) return;
    const last = this.s.lastAudit!.get() as { seq: number; hash: string } | undefined;
    let seq = last?.seq ?? 0;
    let prev = last?.hash ?? GENESIS_HASH;
    const at = this.now();
    for (const e of events) {
      seq++;
      const stageId = e.stageId ?? null;
      const hash = hashAuditEvent(prev, { seq, at, type: e.type, stageId, data: e.data });
      this.s.insertAudit!.run(seq, at, e.type, stageId, JSON.stringify(e.data), prev, hash);
      prev = hash;
    }
  }

  /**
   * Group commit. Every write is queued and, once per event-loop turn, all queued writes
   * run in ONE immediate transaction, each inside its own savepoint: a write that throws
   * (a coded denial such as STAGE_ALREADY_RAN) rolls back only itself. Each caller's
   * promise settles only after the shared COMMIT succeeded, so "resolved" still means
   * "durable"; if the COMMIT fails, every write of the batch rejects. Under concurrency this
   * turns N commits (the dominant cost: WAL append, auto-checkpoints) into one.
   */
  private tx<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const jobs = this.queue;
    this.queue = [];
    if (jobs.length === 0 || !this.db.open) {
      for (const j of jobs) j.reject(new StagegateError('INTERNAL', 'the store is closed'));
      return;
    }
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    try {
      this.db.transaction(() => {
        for (const job of jobs) {
          try {
            outcomes.push({ ok: true, value: this.db.transaction(job.fn)() }); // nested: a SAVEPOINT
          } catch (err) {
            outcomes.push({ ok: false, value: err });
          }
        }
      }).immediate();
    } catch (err) {
      for (const j of jobs) j.reject(err);
      return;
    }
    jobs.forEach((j, i) => (outcomes[i]!.ok ? j.resolve(outcomes[i]!.value) : j.reject(outcomes[i]!.value)));
  }

  async createStage(input: NewStage): Promise<void> {
    const st = input.stage;
    await this.tx(() => {
      if (st.phase === 'run') {
        if (this.s.installOpen!.get(st.build)) {
          throw new StagegateError('INSTALL_PHASE_OPEN', 'the install phase of this build is open: nothing is issued until it closes', {
            details: { stage: st.stage },
          });
        }
        if (input.requireCleanInstall && !this.s.cleanInstall!.get(st.build)) {
          throw new StagegateError('INSTALL_PHASE_REQUIRED', `stage '${st.stage}' opens only after an install phase of this build closed cleanly`, {
            details: { stage: st.stage },
          });
        }
      } else if (this.s.runOpen!.get(st.build)) {
        throw new StagegateError('RUN_STAGE_OPEN', 'a credential-bearing stage of this build is open: close it before installing', {
          details: { stage: st.stage },
        });
      }
      const onceSlot = input.once ? `${st.build}\u0000${st.stage}` : null;
      if (onceSlot !== null && this.s.onceTaken!.get(onceSlot)) {
        throw new StagegateError('STAGE_ALREADY_RAN', `stage '${st.stage}' already ran for this build`, { details: { stage: st.stage } });
      }
      this.s.insertStage!.run({ ...st, onceSlot });
      for (const g of input.grants) this.s.insertGrant!.run(st.id, g.name, g.provider, JSON.stringify(g.intent));
      this.audit(input.audit);
    });
  }

  async recordIssued(stageId: string, grant: string, issued: IssuedRecord, audit: readonly AuditInput[]): Promise<boolean> {
    return this.tx(() => {
      const changed = this.s.recordIssued!.run({ stageId, name: grant, issued: JSON.stringify(issued.handle), kind: issued.kind, revocation: issued.revocation, expiresAt: issued.expiresAt, refreshAt: issued.refreshAt }).changes;
      this.audit(audit);
      return changed > 0;
    });
  }

  async recordOpened(stageId: string, issued: ReadonlyArray<{ grant: string; record: IssuedRecord }>, audit: readonly AuditInput[]): Promise<boolean> {
    return this.tx(() => {
      if (this.s.markOpen!.run(stageId).changes === 0) return false;
      for (const { grant, record } of issued) {
        this.s.recordIssued!.run({ stageId, name: grant, issued: JSON.stringify(record.handle), kind: record.kind, revocation: record.revocation, expiresAt: record.expiresAt, refreshAt: record.refreshAt });
      }
      this.audit(audit);
      return true;
    });
  }

  async recordRefreshed(stageId: string, grant: string, issued: IssuedRecord, audit: readonly AuditInput[]): Promise<boolean> {
    return this.tx(() => {
      const changed = this.s.recordRefreshed!.run({ stageId, name: grant, issued: JSON.stringify(issued.handle), expiresAt: issued.expiresAt, refreshAt: issued.refreshAt }).changes;
      if (changed > 0) this.audit(audit);
      return changed > 0;
    });
  }

  async beginClose(stageId: string, reason: CloseReason, exitCode: number | null, now: number, claimUntil: number, audit: readonly AuditInput[]) {
    return this.tx(() => {
      const state = reason === 'issue-failed' ? 'failed' : 'closing';
      const changed = this.s.closeStage!.run({ id: stageId, state, now, reason, exitCode }).changes;
      if (changed === 0) return undefined;
      this.s.claimStageGrants!.run({ id: stageId, claimUntil, now });
      this.audit(audit);
      const stage = toStage(this.s.getStage!.get(stageId) as StageRow);
      const grants = (this.s.claimedGrants!.all(stageId) as GrantRow[]).map(toGrant);
      return { stage, grants };
    });
  }

  async recordRevocations(stageId: string, outcomes: readonly RevocationOutcome[], closedAudit: AuditInput): Promise<StageState | undefined> {
    return this.tx(() => {
      for (const o of outcomes) {
        if (o.ok) this.s.recordRevoked!.run({ stageId, name: o.grant, method: o.method, at: o.at, effectiveAt: o.effectiveAt });
        else this.s.recordRevokeFailed!.run({ stageId, name: o.grant, code: o.errorCode, next: o.nextAttemptAt });
      }
      this.audit(outcomes.map((o) => o.audit));
      const pending = (this.s.pendingForStage!.get(stageId) as { n: number }).n;
      if (pending === 0 && this.s.finishClose!.run(stageId).changes > 0) this.audit([closedAudit]);
      return (this.s.getStage!.get(stageId) as StageRow | undefined)?.state;
    });
  }

  async heartbeat(stageId: string, now: number, expiresAt: number): Promise<StageRecord | undefined> {
    if (this.s.heartbeat!.run({ id: stageId, now, expiresAt }).changes === 0) return undefined;
    return toStage(this.s.getStage!.get(stageId) as StageRow);
  }

  async getStage(stageId: string): Promise<StageRecord | undefined> {
    const row = this.s.getStage!.get(stageId) as StageRow | undefined;
    return row && toStage(row);
  }

  async getGrants(stageId: string): Promise<GrantRecord[]> {
    return (this.s.getGrants!.all(stageId) as GrantRow[]).map(toGrant);
  }

  async isInstallOpen(build: string): Promise<boolean> {
    return this.s.installOpen!.get(build) !== undefined;
  }

  async findLapsed(now: number, staleOpeningBefore: number, limit: number): Promise<StageRecord[]> {
    return (this.s.lapsed!.all({ now, stale: staleOpeningBefore, limit }) as StageRow[]).map(toStage);
  }

  async claimDueRevocations(now: number, claimUntil: number, limit: number): Promise<GrantRecord[]> {
    return this.tx(() => {
      const rows = (this.s.due!.all({ now, limit }) as GrantRow[]).map(toGrant);
      for (const g of rows) this.s.claimOne!.run({ claimUntil, stageId: g.stageId, name: g.name });
      return rows;
    });
  }

  async findFinishable(limit: number): Promise<string[]> {
    return (this.s.finishable!.all(limit) as Array<{ id: string }>).map((r) => r.id);
  }

  async appendAudit(events: readonly AuditInput[]): Promise<void> {
    await this.tx(() => this.audit(events));
  }

  async readAudit(afterSeq: number, limit: number): Promise<AuditEvent[]> {
    const rows = this.s.readAudit!.all(afterSeq, limit) as Array<{ seq: number; at: number; type: string; stage_id: string | null; data: string; prev_hash: string; hash: string }>;
    return rows.map((r) => ({ seq: r.seq, at: r.at, type: r.type, stageId: r.stage_id, data: JSON.parse(r.data) as Record<string, unknown>, prevHash: r.prev_hash, hash: r.hash }));
  }

  async counts(): Promise<{ openStages: number; pendingRevocations: number }> {
    return {
      openStages: (this.s.openCount!.get() as { n: number }).n,
      pendingRevocations: (this.s.pendingCount!.get() as { n: number }).n,
    };
  }

  async close(): Promise<void> {
    if (this.flushScheduled) this.flush(); // commit what callers are waiting for
    if (this.db.open) this.db.close();
  }
}
