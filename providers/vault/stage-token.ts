/**
 * Per-stage Vault tokens: created as orphans (so they outlive neither more nor less
 * than the stage, whatever happens to the broker's own login token), tagged with a
 * deterministic marker in their metadata, and revoked by accessor — or, after a crash
 * that lost the accessor, found again by that marker.
 */
import type { StageContext } from '../provider';
import type { VaultClient } from './vault-client';
import { isStagegateError } from '../../sdk/errors';
import { readAuth, readListKeys, readTokenLookup, type VaultAuth } from './vault-wire';

/** Metadata key holding the deterministic `<stageId>/<grant>` marker. */
export const MARKER_META_KEY = 'stagegate_marker';
/** Vault metadata values are free strings; keep them short enough for audit logs and UIs. */
const MAX_META_VALUE = 256;

/** The deterministic, non-secret marker of one grant of one stage. */
export function stageMarker(stageId: string, grantName: string): string {
  return `${stageId}/${grantName}`;
}

/** Token metadata naming the stage, so Vault's audit log leads back to it. */
export function stageTokenMeta(ctx: StageContext, grantName: string): Record<string, string> {
  const clip = (v: string) => (v.length > MAX_META_VALUE ? v.slice(0, MAX_META_VALUE) : v);
  return {
    [MARKER_META_KEY]: stageMarker(ctx.stageId, grantName),
    stagegate_stage_id: ctx.stageId,
    stagegate_stage: clip(ctx.stage),
    stagegate_build: clip(ctx.build),
    stagegate_rule: clip(ctx.rule),
    stagegate_grant: clip(grantName),
  };
}

/** Whole seconds from `now` until `until`, at least 1 (Vault reads 0 as "default"). */
export function secondsUntil(until: Date, now: Date): number {
  return Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 1000));
}

export interface StageTokenRequest {
  /** Omitted: inherit the broker token's policies (Vault's rule for an empty list). */
  readonly policies?: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly ttlSeconds: number;
  /** Hard cap: even a renewed or leaked token dies at this point. */
  readonly explicitMaxTtlSeconds: number;
  readonly numUses: number;
  readonly renewable: boolean;
  readonly displayName: string;
  readonly noDefaultPolicy: boolean;
}

/**
 * `POST auth/token/create-orphan`. Orphan, because a child of the broker's login token
 * would be revoked with it when the broker re-logs in or its token expires.
 * `ttl`/`explicit_max_ttl` are sent as strings with units ("900s"): node-vault's own
 * schemas and Vault's parser both expect strings.
 */
export async function createStageToken(client: VaultClient, req: StageTokenRequest): Promise<VaultAuth> {
  const body: Record<string, unknown> = {
    meta: req.meta,
    ttl: `${req.ttlSeconds}s`,
    explicit_max_ttl: `${req.explicitMaxTtlSeconds}s`,
    num_uses: req.numUses,
    renewable: req.renewable,
    display_name: req.displayName,
    no_default_policy: req.noDefaultPolicy,
  };
  if (req.policies) body.policies = [...req.policies];
  const res = await client.call({ operation: 'create token', method: 'POST', path: 'auth/token/create-orphan', body, idempotent: false });
  return readAuth(res, 'create token');
}

/** Revoke a token (its children and leases) by accessor. An unknown accessor means it is already gone. */
export async function revokeAccessor(client: VaultClient, accessor: string): Promise<void> {
  try {
    await client.call({ operation: 'revoke token', method: 'POST', path: 'auth/token/revoke-accessor', body: { accessor } });
  } catch (err) {
    // Vault answers 400 "invalid accessor" for a token that was revoked or expired: done.
    if (isStagegateError(err, 'PROVIDER_REJECTED') && err.details.vaultError === 'invalid accessor') return;
    throw err;
  }
}

/**
 * Crash recovery: find every live token carrying `marker` and revoke it. Needs `sudo`
 * on `auth/token/accessors` (to list) and `update` on `lookup-accessor`. Returns
 * `forbidden` when the broker's policy does not allow the listing, so the caller can
 * fall back to the TTL backstop and say so.
 */
export async function revokeByMarker(client: VaultClient, marker: string): Promise<{ revoked: number } | 'forbidden'> {
  let accessors: string[];
  try {
    const res = await client.call({ operation: 'list token accessors', method: 'LIST', path: 'auth/token/accessors' });
    accessors = readListKeys(res, 'list token accessors');
  } catch (err) {
    if (isStagegateError(err, 'PROVIDER_REJECTED') && err.details.status === 404) return { revoked: 0 };
    if (isStagegateError(err, 'PROVIDER_REJECTED') && err.details.status === 403) return 'forbidden';
    throw err;
  }
  let revoked = 0;
  for (const accessor of accessors) {
    let meta: Readonly<Record<string, string>> | null;
    try {
      const res = await client.call({ operation: 'look up token', method: 'POST', path: 'auth/token/lookup-accessor', body: { accessor } });
      meta = readTokenLookup(res, 'look up token').meta;
    } catch (err) {
      // Expired or revoked between the list and the lookup.
      if (isStagegateError(err, 'PROVIDER_REJECTED') && err.details.vaultError === 'invalid accessor') continue;
      throw err;
    }
    if (meta?.[MARKER_META_KEY] !== marker) continue;
    await revokeAccessor(client, accessor);
    revoked++;
  }
  return { revoked };
}
