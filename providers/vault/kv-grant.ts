/**
 * Grant type `kv`: read a KV v2 secret. The value is static — nothing can take it back
 * at stage exit — so the config demands `static: true` and revocation is reported as
 * `none`. Prefer dynamic secrets wherever the backend offers them.
 */
import type { GrantSpec, IssuedCredential, StageContext } from '../provider';
import type { VaultClient } from './vault-client';
import type { VaultKvGrant } from './vault-config';
import { readSecret } from './vault-wire';
import { stringifySecretData } from './secret-values';

export async function issueKvGrant(client: VaultClient, grant: GrantSpec<VaultKvGrant>, ctx: StageContext): Promise<IssuedCredential> {
  const { mount, path } = grant.params;
  const res = await client.call({ operation: 'read kv secret', method: 'GET', path: `${mount}/data/${path}` });
  const envelope = readSecret(res, 'read kv secret');
  // KV v2 nests the values: data.data, with data.metadata.version beside them.
  const inner = envelope.data?.data;
  const metadata = envelope.data?.metadata as { version?: unknown } | undefined;
  const values = stringifySecretData(inner, 'read kv secret');
  return {
    kind: 'secret',
    values,
    meta: { vaultAddress: client.address, ...(client.namespace ? { namespace: client.namespace } : {}) },
    expiresAt: ctx.expiresAt,
    handle: { mount, path, version: typeof metadata?.version === 'number' ? metadata.version : null },
    revocation: 'none',
  };
}
