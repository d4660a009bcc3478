/**
 * Grant type `token`: an orphan Vault token for the stage, with the grant's policies.
 * Its TTL is the stage's TTL and its `explicit_max_ttl` the stage's max TTL, so even a
 * leaked or renewed token cannot outlive the stage. Revoked natively by accessor.
 */
import type { GrantSpec, IssuedCredential, StageContext } from '../provider';
import type { VaultClient } from './vault-client';
import { durationSeconds, type VaultTokenGrant } from './vault-config';
import { createStageToken, secondsUntil, stageTokenMeta } from './stage-token';

/** Vault display names allow letters, digits and dashes; Vault prefixes `token-`. */
function displayNameFor(grant: VaultTokenGrant, ctx: StageContext): string {
  if (grant.displayName) return grant.displayName;
  return `stagegate-${ctx.stage}`.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64);
}

export async function issueTokenGrant(client: VaultClient, grant: GrantSpec<VaultTokenGrant>, ctx: StageContext, now: Date): Promise<IssuedCredential> {
  const p = grant.params;
  const maxSeconds = secondsUntil(ctx.maxExpiresAt, now);
  const stageSeconds = Math.min(secondsUntil(ctx.expiresAt, now), maxSeconds);
  const ttlSeconds = p.ttl === undefined ? stageSeconds : Math.min(durationSeconds(p.ttl), stageSeconds);
  const auth = await createStageToken(client, {
    policies: p.policies,
    meta: stageTokenMeta(ctx, grant.name),
    ttlSeconds,
    explicitMaxTtlSeconds: maxSeconds,
    numUses: p.numUses,
    renewable: p.renewable,
    displayName: displayNameFor(p, ctx),
    noDefaultPolicy: p.noDefaultPolicy,
  });
  const leaseSeconds = auth.lease_duration > 0 ? auth.lease_duration : ttlSeconds;
  return {
    kind: 'vault-token',
    values: { token: auth.client_token },
    meta: { vaultAddress: client.address, ...(client.namespace ? { namespace: client.namespace } : {}) },
    expiresAt: new Date(now.getTime() + leaseSeconds * 1000),
    // The accessor is the revocation handle. It cannot be used as the token, but it can
    // revoke and look the token up, so it stays in the store and out of audit messages.
    handle: { accessor: auth.accessor },
    revocation: 'native',
  };
}
