/**
 * Grant type `dynamic`: a secrets-engine read that returns a lease (database creds,
 * AWS keys, …).
 *
 * Vault ties every lease to the token that created it and revokes the lease with that
 * token. Reading with the broker's own login token would make the credential die
 * whenever the broker's token expires or is replaced, and would leave nothing to find
 * after a crash. So each read is made with a fresh per-stage orphan token (the "lease
 * owner"): tagged with the stage marker, its `explicit_max_ttl` the stage's max TTL,
 * never handed out. Revoking it revokes the lease; after a crash it is found by its
 * marker; and if nothing can be revoked, its max TTL bounds the lease's life.
 *
 * AWS STS credentials (Vault's `assumed_role`/`federation_token`/`session_token`
 * types) cannot be revoked by anyone: since Vault 1.13 they carry no lease at all, and
 * revoking one never invalidated the keys. They are reported as `expiry`.
 */
import type { Logger } from 'pino';
import type { GrantSpec, Handle, IssuedCredential, RevocationMethod, StageContext } from '../provider';
import { StagegateError } from '../../sdk/errors';
import type { VaultClient } from './vault-client';
import type { VaultDynamicGrant } from './vault-config';
import { createStageToken, revokeAccessor, secondsUntil, stageTokenMeta } from './stage-token';
import { stringifySecretData } from './secret-values';
import { readSecret } from './vault-wire';

/** `<mount>/sts/<role>`: Vault's AWS STS endpoint, never revocable. */
export function isStsPath(path: string): boolean {
  return path.split('/')[1] === 'sts';
}

function awsValues(data: Readonly<Record<string, unknown>> | null): Record<string, string> {
  const d = data ?? {};
  if (typeof d.access_key !== 'string' || typeof d.secret_key !== 'string') {
    throw new StagegateError('PROVIDER_REJECTED', 'Vault secret has no AWS access_key/secret_key (is kind: aws right for this path?)', {
      details: { provider: 'vault', operation: 'read dynamic secret' },
    });
  }
  const values: Record<string, string> = { accessKeyId: d.access_key, secretAccessKey: d.secret_key };
  if (typeof d.security_token === 'string' && d.security_token) values.sessionToken = d.security_token;
  return values;
}

export async function issueDynamicGrant(
  client: VaultClient,
  grant: GrantSpec<VaultDynamicGrant>,
  ctx: StageContext,
  now: Date,
  logger: Logger,
): Promise<IssuedCredential> {
  const p = grant.params;
  const maxSeconds = secondsUntil(ctx.maxExpiresAt, now);
  const owner = await createStageToken(client, {
    policies: p.policies,
    meta: stageTokenMeta(ctx, grant.name),
    // The owner lives as long as the stage may, so heartbeats never outlast the lease;
    // it is revoked at stage exit like any other handle.
    ttlSeconds: maxSeconds,
    explicitMaxTtlSeconds: maxSeconds,
    numUses: 0,
    renewable: false,
    displayName: 'stagegate-lease-owner',
    noDefaultPolicy: true,
  });
  let issued: IssuedCredential;
  try {
    let body = p.body;
    // Ask STS for no more than the stage may live: these keys cannot be revoked.
    if (p.method === 'PUT' && isStsPath(p.path) && body?.ttl === undefined) body = { ...body, ttl: `${maxSeconds}s` };
    const res = await client.call({
      operation: 'read dynamic secret',
      method: p.method === 'PUT' ? 'POST' : 'GET',
      path: p.path,
      ...(body ? { body } : {}),
      token: owner.client_token,
      idempotent: false,
    });
    const secret = readSecret(res, 'read dynamic secret');
    const values = p.kind === 'aws' ? awsValues(secret.data) : stringifySecretData(secret.data, 'read dynamic secret');
    // STS keys: a session token, an sts path, or no lease at all means nothing can revoke them.
    const irrevocable = !secret.lease_id || isStsPath(p.path) || (p.kind === 'aws' && values.sessionToken !== undefined);
    const leaseEnd = now.getTime() + (secret.lease_duration > 0 ? secret.lease_duration : maxSeconds) * 1000;
    // A revocable lease dies with its owner token at the stage's max TTL at the latest.
    const expiresAt = new Date(irrevocable ? leaseEnd : Math.min(leaseEnd, ctx.maxExpiresAt.getTime()));
    if (irrevocable && leaseEnd > ctx.maxExpiresAt.getTime()) {
      logger.warn({ provider: 'vault', stageId: ctx.stageId, grant: grant.name, overrunSeconds: Math.round((leaseEnd - ctx.maxExpiresAt.getTime()) / 1000) },
        'vault returned an irrevocable credential that outlives the stage; lower the role TTL');
    }
    const revocation: RevocationMethod = irrevocable ? 'expiry' : 'native';
    const handle: Handle = {
      ownerAccessor: owner.accessor,
      leaseId: secret.lease_id || null,
      revocation,
      expiresAt: expiresAt.toISOString(),
    };
    issued = {
      kind: p.kind === 'aws' ? 'aws' : 'secret',
      values,
      meta: { vaultAddress: client.address, ...(client.namespace ? { namespace: client.namespace } : {}) },
      expiresAt,
      handle,
      revocation,
    };
  } catch (err) {
    // Do not leave the owner token (and any lease it made) behind a failed issue.
    await revokeAccessor(client, owner.accessor).catch(() => undefined);
    throw err;
  }
  return issued;
}

/** Revoke an issued dynamic secret: the lease first (synchronous in Vault), then its owner token. */
export async function revokeDynamic(client: VaultClient, handle: { ownerAccessor: string; leaseId: string | null }): Promise<void> {
  if (handle.leaseId) {
    await client.call({ operation: 'revoke lease', method: 'POST', path: 'sys/leases/revoke', body: { lease_id: handle.leaseId } });
  }
  await revokeAccessor(client, handle.ownerAccessor);
}
