/**
 * The stage lifecycle, free of HTTP: the Koa routes parse, call this, and map results.
 * Reads top to bottom as DESIGN.md's request flow: verify identity → build key →
 * policy (install lock) → provenance → record intents (write-ahead) → issue → answer.
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { StagegateError, isStagegateError } from '../../sdk/errors';
import type { GrantSpec, Handle, IssuedCredential, Provider, StageContext } from '../../providers/provider';
import type { AuditInput } from '../audit/audit-chain';
import type { closeResponse, heartbeatResponse, openedStageResponse } from '../http/api-schemas';
import type { IdentityVerifier, VerifiedIdentity } from '../identity/verify-identity-token';
import { sha256Hex } from '../identity/verify-identity-token';
import type { BrokerMetrics } from '../metrics';
import type { CompiledPolicy, CompiledStage } from '../policy/compile-policy';
import { evaluatePolicy } from '../policy/evaluate';
import type { CloseReason, GrantRecord, IssuedRecord, RevocationOutcome, StageRecord, Store } from '../store/store';
import { toCredentialView, toRevokedView, toStageView, type CredentialView, type RevokedView, type StageView } from './credential-view';

export interface OpenStageInput {
  readonly identityToken: string | undefined;
  readonly stage: string;
  readonly phase: 'run' | 'install';
  readonly evidence?: readonly unknown[];
  readonly artifacts?: ReadonlyArray<{ readonly name?: string; readonly digest: { readonly sha256: string } }>;
}

/** The open response; `stageToken` and credential `values` are SECRET. */
export type OpenedStage = z.infer<typeof openedStageResponse>;

export type HeartbeatResult = z.infer<typeof heartbeatResponse>;

export type CloseResult = z.infer<typeof closeResponse>;

/** Checks a stage's `requires:` against the request's evidence; throws PROVENANCE_FAILED. */
export type ProvenanceCheck = (
  requires: unknown,
  input: { evidence: readonly unknown[]; artifacts: NonNullable<OpenStageInput['artifacts']> },
  claims: Readonly<Record<string, unknown>>,
) => Promise<unknown>;

export interface LifecycleDeps {
  readonly store: Store;
  readonly policy: CompiledPolicy;
  readonly identity: IdentityVerifier;
  readonly providers: ReadonlyMap<string, Provider<any>>;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  readonly now?: () => number;
  /** Absent: any stage with `requires:` is denied (fail closed). */
  readonly provenance?: ProvenanceCheck;
  /** sha256 hex digests of admin tokens allowed to read any stage. */
  readonly adminTokenSha256?: readonly string[];
  readonly revokeBackoff?: { readonly initialMs: number; readonly maxMs: number };
}

/** How long a closer owns the grants it claimed before the reaper may take them over, ms. */
export const REVOKE_CLAIM_MS = 60_000;
/** Refresh a credential this long before its `refreshAt` has passed, ms (heartbeat granularity). */
const REFRESH_SLACK_MS = 1_000;

export interface StageLifecycle {
  openStage(input: OpenStageInput): Promise<OpenedStage>;
  heartbeat(stageId: string, stageToken: string | undefined): Promise<HeartbeatResult>;
  closeStage(stageId: string, stageToken: string | undefined, exitCode: number | null): Promise<CloseResult>;
  getStage(stageId: string, token: string | undefined): Promise<StageView>;
  /** Close a stage for the reaper (lapsed heartbeat, TTL, crash recovery). */
  reapStage(stage: StageRecord, reason: CloseReason): Promise<void>;
  /** Revoke claimed grants of one stage and record the outcomes (reaper retries). */
  revokeClaimed(stageId: string, grants: readonly GrantRecord[], since: number): Promise<void>;
  /** Close a `closing` stage whose grants are all revoked. */
  finish(stageId: string): Promise<void>;
  /** Wait for closes in flight (shutdown). */
  drain(): Promise<void>;
}

const newStageToken = () => `sgst_${randomBytes(32).toString('base64url')}`;

function tokenMatches(token: string | undefined, sha256: string): boolean {
  if (!token) return false;
  const a = Buffer.from(sha256Hex(token), 'hex');
  const b = Buffer.from(sha256, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reduce any failure of a provider to a coded error: never pass a cloud SDK's message on. */
function providerError(err: unknown, grant: string, provider: string): StagegateError {
  if (isStagegateError(err)) {
    return new StagegateError(err.code, err.message, { details: { ...err.details, grant, provider } });
  }
  return new StagegateError('PROVIDER_UNAVAILABLE', `provider '${provider}' failed to issue grant '${grant}'`, { details: { grant, provider } });
}

export function createStageLifecycle(deps: LifecycleDeps): StageLifecycle {
  const { store, policy, identity, providers, logger, metrics } = deps;
  const now = deps.now ?? Date.now;
  const backoff = deps.revokeBackoff ?? { initialMs: 500, maxMs: 60_000 };
  const adminDigests = deps.adminTokenSha256 ?? [];
  const closing = new Map<string, Promise<CloseResult>>();
  const reaping = new Set<Promise<unknown>>();

  function stageDefinition(s: Pick<StageRecord, 'rule' | 'stage'>): CompiledStage | undefined {
    return policy.rules.find((r) => r.name === s.rule)?.stages.get(s.stage);
  }

  function contextOf(s: StageRecord, claims: Readonly<Record<string, unknown>> = {}): StageContext {
    return {
      stageId: s.id,
      build: s.build,
      stage: s.stage,
      rule: s.rule,
      issuer: s.issuer,
      claims,
      expiresAt: new Date(s.expiresAt),
      maxExpiresAt: new Date(s.maxExpiresAt),
    };
  }

  async function deny(err: StagegateError, req: OpenStageInput, who: VerifiedIdentity | undefined): Promise<never> {
    metrics.denials.inc({ code: err.code });
    metrics.opens.inc({ result: 'denied' });
    const data: Record<string, unknown> = {
      code: err.code,
      stage: req.stage.slice(0, 64),
      phase: req.phase,
      details: err.details,
      identitySha256: who?.tokenSha256 ?? (req.identityToken ? sha256Hex(req.identityToken) : null),
      build: who?.build ?? null,
      issuer: who?.issuer ?? null,
    };
    await store.appendAudit([{ type: 'stage.denied', data }]);
    logger.info({ event: 'stage.denied', ...data }, 'stage denied');
    throw err;
  }

  async function openStage(req: OpenStageInput): Promise<OpenedStage> {
    // 1-2. identity and build key
    let who: VerifiedIdentity;
    try {
      who = await identity.verify(req.identityToken);
    } catch (err) {
      return deny(err as StagegateError, req, undefined);
    }
    // 3. policy
    let stageDef: CompiledStage;
    let ruleName: string;
    try {
      const decision = evaluatePolicy(policy, { issuer: who.issuer, claims: who.claims, stage: req.stage, phase: req.phase });
      stageDef = decision.stage;
      ruleName = decision.rule.name;
    } catch (err) {
      return deny(err as StagegateError, req, who);
    }
    // 4. provenance (fail closed when required and no verifier is wired)
    if (stageDef.requires !== undefined) {
      try {
        if (!deps.provenance) throw new StagegateError('PROVENANCE_FAILED', 'this stage requires provenance and no verifier is configured', { details: { check: 'no-verifier' } });
        await deps.provenance(stageDef.requires, { evidence: req.evidence ?? [], artifacts: req.artifacts ?? [] }, who.claims);
      } catch (err) {
        return deny(isStagegateError(err) ? err : new StagegateError('PROVENANCE_FAILED', 'provenance verification failed', { details: { check: 'internal' } }), req, who);
      }
    }

    // 5-6. decide and record, write-ahead: the intents are committed before any provider call.
    const t0 = now();
    const stageToken = newStageToken();
    const record: StageRecord = {
      id: randomUUID(),
      build: who.build,
      stage: stageDef.name,
      phase: stageDef.phase,
      rule: ruleName,
      issuer: who.issuer,
      state: 'opening',
      tokenSha256: sha256Hex(stageToken),
      identitySha256: who.tokenSha256,
      openedAt: t0,
      expiresAt: t0 + stageDef.ttlSeconds * 1000,
      maxExpiresAt: t0 + stageDef.maxTtlSeconds * 1000,
      heartbeatSeconds: stageDef.heartbeatSeconds,
      lastHeartbeatAt: t0,
      closedAt: null,
      closeReason: null,
      exitCode: null,
    };
    const ctx = contextOf(record, who.claims);
    const plan = stageDef.grants.map((g) => {
      const provider = providers.get(g.provider);
      if (!provider) throw new StagegateError('INTERNAL', `grant '${g.name}' names provider '${g.provider}' that is not running`);
      const spec: GrantSpec = { name: g.name, provider: g.provider, params: g.params };
      return { spec, provider, intent: provider.prepare(spec, ctx) };
    });
    const { closedAt: _c, closeReason: _r, exitCode: _e, state: _s, ...newStage } = record;
    try {
      await store.createStage({
        stage: newStage,
        grants: plan.map((p) => ({ name: p.spec.name, provider: p.spec.provider, intent: p.intent })),
        once: stageDef.once,
        requireCleanInstall: stageDef.requireInstallPhase,
        audit: [
          {
            type: 'stage.opened',
            stageId: record.id,
            data: {
              build: record.build,
              stage: record.stage,
              phase: record.phase,
              rule: record.rule,
              issuer: record.issuer,
              identitySha256: who.tokenSha256,
              subject: typeof who.claims.sub === 'string' ? who.claims.sub.slice(0, 256) : null,
              grants: plan.map((p) => ({ name: p.spec.name, provider: p.spec.provider, intent: p.intent })),
              expiresAt: record.expiresAt,
            },
          },
        ],
      });
    } catch (err) {
      if (isStagegateError(err)) return deny(err, req, who);
      throw err;
    }

    // 7. issue, all or nothing. The intents are already committed, so a crash from here
    // on is revoked from them; the issued handles are recorded together with `open`.
    const issued: Array<{ name: string; provider: string; credential: IssuedCredential; intent: Handle; record: IssuedRecord }> = [];
    const failures: StagegateError[] = [];
    await Promise.all(
      plan.map(async ({ spec, provider, intent }) => {
        const started = process.hrtime.bigint();
        try {
          const credential = await provider.issue(spec, ctx, intent);
          metrics.issueSeconds.observe({ provider: spec.provider }, Number(process.hrtime.bigint() - started) / 1e9);
          const rec: IssuedRecord = {
            handle: credential.handle,
            kind: credential.kind,
            revocation: credential.revocation,
            expiresAt: credential.expiresAt.getTime(),
            refreshAt: credential.refreshAt?.getTime() ?? null,
          };
          issued.push({ name: spec.name, provider: spec.provider, credential, intent, record: rec });
        } catch (err) {
          const coded = providerError(err, spec.name, spec.provider);
          failures.push(coded);
          logger.warn({ event: 'credential.issue-failed', stageId: record.id, grant: spec.name, provider: spec.provider, code: coded.code }, 'issue failed');
        }
      }),
    );
    const issuedAudit = (i: (typeof issued)[number]): AuditInput => ({
      type: 'credential.issued',
      stageId: record.id,
      data: { grant: i.name, provider: i.provider, kind: i.credential.kind, revocation: i.credential.revocation, expiresAt: i.record.expiresAt, handle: i.credential.handle },
    });
    if (failures.length > 0) {
      // Record what was issued (so the close revokes by handle), then revoke everything.
      for (const i of issued) await store.recordIssued(record.id, i.name, i.record, [issuedAudit(i)]);
      await store.appendAudit([
        { type: 'credential.issue-failed', stageId: record.id, data: { failures: failures.map((f) => ({ code: f.code, grant: f.details.grant, provider: f.details.provider })) } },
      ]);
      await closeNow(record.id, 'issue-failed', null);
      return deny(failures[0]!, req, who);
    }
    const opened = await store.recordOpened(
      record.id,
      issued.map((i) => ({ grant: i.name, record: i.record })),
      issued.map(issuedAudit),
    );
    if (!opened) {
      // The stage was reaped while the providers were called: take back what they minted.
      await Promise.all(issued.map((i) => providers.get(i.provider)!.revoke(i.intent, i.credential.handle).catch(() => undefined)));
      return deny(new StagegateError('PROVIDER_UNAVAILABLE', 'the stage was closed while it was opening'), req, who);
    }
    metrics.opens.inc({ result: 'opened' });
    logger.info({ event: 'stage.opened', stageId: record.id, build: record.build, stage: record.stage, rule: record.rule, grants: issued.length }, 'stage opened');
    const byName = new Map(issued.map((i) => [i.name, i]));
    return {
      stageId: record.id,
      stageToken,
      build: record.build,
      stage: record.stage,
      phase: record.phase,
      rule: record.rule,
      expiresAt: new Date(record.expiresAt).toISOString(),
      maxExpiresAt: new Date(record.maxExpiresAt).toISOString(),
      heartbeatSeconds: record.heartbeatSeconds,
      credentials: plan.map((p) => {
        const i = byName.get(p.spec.name)!;
        return toCredentialView(i.name, i.provider, i.credential);
      }),
    };
  }

  async function authorize(stageId: string, token: string | undefined, allowAdmin = false): Promise<StageRecord> {
    const stage = await store.getStage(stageId);
    if (!stage) throw new StagegateError('STAGE_NOT_FOUND', 'no such stage', { details: { stageId: stageId.slice(0, 64) } });
    if (tokenMatches(token, stage.tokenSha256)) return stage;
    if (allowAdmin && token && adminDigests.some((d) => tokenMatches(token, d))) return stage;
    throw new StagegateError('UNAUTHENTICATED', 'the stage token is missing or wrong', { details: { reason: 'stage-token' } });
  }

  /** One revocation attempt; a failure becomes a retry scheduled with exponential backoff. */
  async function revokeOne(g: GrantRecord, since: number): Promise<RevocationOutcome> {
    const provider = providers.get(g.provider);
    try {
      if (!provider) throw new StagegateError('PROVIDER_UNAVAILABLE', `provider '${g.provider}' is not configured`);
      const result = await provider.revoke(g.intent, g.issued ?? undefined);
      const at = now();
      metrics.revocations.inc({ provider: g.provider, method: result.method, result: 'ok' });
      metrics.revocationLagSeconds.observe({ provider: g.provider }, Math.max(0, at - since) / 1000);
      const effectiveAt = result.effectiveAt.getTime();
      return {
        grant: g.name,
        ok: true,
        method: result.method,
        at,
        effectiveAt,
        audit: {
          type: 'credential.revoked',
          stageId: g.stageId,
          data: { grant: g.name, provider: g.provider, method: result.method, effectiveAt, handle: g.issued ?? g.intent, attempts: g.attempts + 1 },
        },
      };
    } catch (err) {
      const code = isStagegateError(err) ? err.code : 'PROVIDER_UNAVAILABLE';
      const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(g.attempts, 20));
      metrics.revocations.inc({ provider: g.provider, method: g.revocation ?? 'unknown', result: 'failed' });
      logger.warn({ event: 'credential.revoke-failed', stageId: g.stageId, grant: g.name, provider: g.provider, code, retryInMs: delay }, 'revocation failed; will retry');
      return {
        grant: g.name,
        ok: false,
        errorCode: code,
        nextAttemptAt: now() + delay,
        audit: { type: 'credential.revoke-failed', stageId: g.stageId, data: { grant: g.name, provider: g.provider, code, attempt: g.attempts + 1, retryInMs: delay } },
      };
    }
  }

  /**
   * Revoke claimed grants of one stage and record every outcome (and the close, when
   * nothing is left) in one transaction. A crash before the record only means the
   * reaper revokes again: every provider's revoke is idempotent.
   */
  async function revokeClaimed(stageId: string, grants: readonly GrantRecord[], since: number): Promise<void> {
    const outcomes = await Promise.all(grants.map((g) => revokeOne(g, since)));
    await store.recordRevocations(stageId, outcomes, { type: 'stage.closed', stageId, data: {} });
  }

  async function closeNow(stageId: string, reason: CloseReason, exitCode: number | null): Promise<void> {
    const t = now();
    const begun = await store.beginClose(stageId, reason, exitCode, t, t + REVOKE_CLAIM_MS, [
      { type: reason === 'issue-failed' ? 'stage.failed' : 'stage.closing', stageId, data: { reason, exitCode } },
    ]);
    if (!begun) return;
    await revokeClaimed(stageId, begun.grants, t);
  }

  async function closeView(stageId: string): Promise<CloseResult> {
    const stage = (await store.getStage(stageId))!;
    const grants = await store.getGrants(stageId);
    return { stageId, state: stage.state, revoked: grants.map(toRevokedView) };
  }

  return {
    openStage,

    async heartbeat(stageId, stageToken) {
      const stage = await authorize(stageId, stageToken);
      if (stage.state !== 'open') {
        throw new StagegateError('STAGE_CLOSED', `the stage is ${stage.state}`, { details: { state: stage.state, closeReason: stage.closeReason } });
      }
      const t = now();
      const def = stageDefinition(stage);
      const ttlMs = def ? def.ttlSeconds * 1000 : stage.expiresAt - stage.openedAt;
      const updated = await store.heartbeat(stageId, t, Math.min(stage.maxExpiresAt, Math.max(stage.expiresAt, t + ttlMs)));
      if (!updated) throw new StagegateError('STAGE_CLOSED', 'the stage closed', { details: { state: 'closed' } });
      const refreshed: CredentialView[] = [];
      let closedMeanwhile = false;
      for (const g of await store.getGrants(stageId)) {
        if (g.state !== 'issued' || g.refreshAt === null || g.refreshAt > t + REFRESH_SLACK_MS || !g.issued) continue;
        const provider = providers.get(g.provider);
        const spec = def?.grants.find((x) => x.name === g.name);
        if (!provider?.refresh || !spec) continue;
        try {
          const c = await provider.refresh({ name: spec.name, provider: spec.provider, params: spec.params }, contextOf(updated), g.issued);
          const applied = await store.recordRefreshed(stageId, g.name, { handle: c.handle, kind: c.kind, revocation: c.revocation, expiresAt: c.expiresAt.getTime(), refreshAt: c.refreshAt?.getTime() ?? null }, [
            { type: 'credential.refreshed', stageId, data: { grant: g.name, provider: g.provider, expiresAt: c.expiresAt.getTime(), handle: c.handle } },
          ]);
          if (!applied) {
            // The stage closed while the provider was minting: the close revoked the
            // previous credential and reported ITS end as effectiveAt. Handing the late
            // credential out would let it outlive what the close reported (GCP tokens
            // cannot be revoked), so it is not.
            closedMeanwhile = true;
            await provider.revoke(g.intent, c.handle).catch(() => undefined);
            logger.warn({ event: 'credential.refresh-discarded', stageId, grant: g.name, provider: g.provider }, 'the stage closed during a refresh; the new credential was not handed out');
            continue;
          }
          refreshed.push(toCredentialView(g.name, g.provider, c));
        } catch (err) {
          // The current credential is still valid until it expires; the next heartbeat retries.
          logger.warn({ event: 'credential.refresh-failed', stageId, grant: g.name, code: isStagegateError(err) ? err.code : 'PROVIDER_UNAVAILABLE' }, 'refresh failed');
        }
      }
      if (closedMeanwhile) {
        throw new StagegateError('STAGE_CLOSED', 'the stage closed while its credentials were being refreshed', { details: { state: 'closed' } });
      }
      return {
        stageId,
        state: updated.state,
        expiresAt: new Date(updated.expiresAt).toISOString(),
        heartbeatSeconds: updated.heartbeatSeconds,
        installPhaseOpen: await store.isInstallOpen(updated.build),
        credentials: refreshed,
      };
    },

    async closeStage(stageId, stageToken, exitCode) {
      await authorize(stageId, stageToken);
      const inflight = closing.get(stageId);
      if (inflight) return inflight;
      const p = (async () => {
        await closeNow(stageId, 'exit', exitCode);
        return closeView(stageId);
      })();
      closing.set(stageId, p);
      try {
        return await p;
      } finally {
        closing.delete(stageId);
      }
    },

    async getStage(stageId, token) {
      const stage = await authorize(stageId, token, true);
      return toStageView(stage, await store.getGrants(stageId), await store.isInstallOpen(stage.build));
    },

    async reapStage(stage, reason) {
      const p = closeNow(stage.id, reason, null);
      reaping.add(p);
      try {
        await p;
      } finally {
        reaping.delete(p);
      }
      logger.info({ event: 'stage.reaped', stageId: stage.id, reason }, 'stage reaped');
    },

    revokeClaimed,
    finish: (stageId) => revokeClaimed(stageId, [], now()),

    async drain() {
      await Promise.allSettled([...closing.values(), ...reaping]);
    },
  };
}
