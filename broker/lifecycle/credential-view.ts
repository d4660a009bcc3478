/** Wire shapes of the stage API (docs/api.md, docs/openapi.yaml). */
import type { IssuedCredential, RevocationMethod } from '../../providers/provider';
import type { GrantRecord, StageRecord } from '../store/store';

export interface CredentialView {
  readonly name: string;
  readonly provider: string;
  readonly kind: IssuedCredential['kind'];
  readonly expiresAt: string;
  readonly revocation: RevocationMethod;
  /** SECRET: only ever in the response to the stage's holder. */
  readonly values: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
  readonly refreshAt?: string;
}

export function toCredentialView(name: string, provider: string, c: IssuedCredential): CredentialView {
  return {
    name,
    provider,
    kind: c.kind,
    expiresAt: c.expiresAt.toISOString(),
    revocation: c.revocation,
    values: c.values,
    meta: c.meta ?? {},
    ...(c.refreshAt ? { refreshAt: c.refreshAt.toISOString() } : {}),
  };
}

export interface RevokedView {
  readonly name: string;
  readonly provider: string;
  readonly method: RevocationMethod | null;
  readonly at: string | null;
  readonly effectiveAt: string | null;
  readonly state: 'revoked' | 'pending';
  readonly lastErrorCode?: string;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function toRevokedView(g: GrantRecord): RevokedView {
  return {
    name: g.name,
    provider: g.provider,
    method: g.method ?? g.revocation,
    at: iso(g.revokedAt),
    effectiveAt: iso(g.effectiveAt),
    state: g.state === 'revoked' ? 'revoked' : 'pending',
    ...(g.lastErrorCode && g.state !== 'revoked' ? { lastErrorCode: g.lastErrorCode } : {}),
  };
}

export interface StageView {
  readonly stageId: string;
  readonly build: string;
  readonly stage: string;
  readonly phase: 'run' | 'install';
  readonly rule: string;
  readonly state: StageRecord['state'];
  readonly installPhaseOpen: boolean;
  readonly openedAt: string;
  readonly expiresAt: string;
  readonly maxExpiresAt: string;
  readonly heartbeatSeconds: number;
  readonly closedAt: string | null;
  readonly closeReason: string | null;
  readonly exitCode: number | null;
  readonly grants: ReadonlyArray<{
    readonly name: string;
    readonly provider: string;
    readonly kind: string | null;
    readonly state: GrantRecord['state'];
    readonly revocation: RevocationMethod | null;
    readonly expiresAt: string | null;
    readonly revokedAt: string | null;
    readonly effectiveAt: string | null;
    readonly method: RevocationMethod | null;
    readonly attempts: number;
    readonly lastErrorCode: string | null;
  }>;
}

export function toStageView(s: StageRecord, grants: readonly GrantRecord[], installPhaseOpen: boolean): StageView {
  return {
    stageId: s.id,
    build: s.build,
    stage: s.stage,
    phase: s.phase,
    rule: s.rule,
    state: s.state,
    installPhaseOpen,
    openedAt: new Date(s.openedAt).toISOString(),
    expiresAt: new Date(s.expiresAt).toISOString(),
    maxExpiresAt: new Date(s.maxExpiresAt).toISOString(),
    heartbeatSeconds: s.heartbeatSeconds,
    closedAt: iso(s.closedAt),
    closeReason: s.closeReason,
    exitCode: s.exitCode,
    grants: grants.map((g) => ({
      name: g.name,
      provider: g.provider,
      kind: g.kind,
      state: g.state,
      revocation: g.revocation,
      expiresAt: iso(g.expiresAt),
      revokedAt: iso(g.revokedAt),
      effectiveAt: iso(g.effectiveAt),
      method: g.method,
      attempts: g.attempts,
      lastErrorCode: g.lastErrorCode,
    })),
  };
}
