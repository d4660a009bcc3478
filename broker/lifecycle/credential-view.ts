/**
 * Builders of the stage API's wire shapes. The types come from the response schemas in
 * ../http/api-schemas.ts, the one definition that docs/openapi.json is generated from.
 */
import type { z } from 'zod';
import type { IssuedCredential } from '../../providers/provider';
import type { credentialResponse, revokedResponse, stageResponse } from '../http/api-schemas';
import type { GrantRecord, StageRecord } from '../store/store';

export type CredentialView = z.infer<typeof credentialResponse>;

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

export type RevokedView = z.infer<typeof revokedResponse>;

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

export type StageView = z.infer<typeof stageResponse>;

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
