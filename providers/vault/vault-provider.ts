/**
 * The `vault` provider: per-stage Vault tokens, dynamic secrets with leases, and
 * (explicitly static) KV v2 reads, from HashiCorp Vault. See docs/providers/vault.md.
 *
 * Revocation guarantees:
 * - `token`: orphan token revoked by accessor at exit (`native`); after a crash, found
 *   by its stage marker (needs `sudo` on auth/token/accessors) or else dead at the
 *   stage's max TTL by `explicit_max_ttl` (`expiry`).
 * - `dynamic`: lease revoked, then its per-stage owner token (`native`); STS-type AWS
 *   keys cannot be revoked (`expiry`, at their own end).
 * - `kv`: static, cannot be revoked (`none`).
 */
import type { CredentialKind, GrantSpec, Handle, IssuedCredential, Provider, ProviderDeps, ProviderFactory, RevokeResult, StageContext } from '../provider';
import type { Environment } from './broker-login';
import { createVaultClient, type VaultClient } from './vault-client';
import { vaultConfigSchema, vaultGrantSchema, type VaultConfig, type VaultDynamicGrant, type VaultGrant, type VaultKvGrant, type VaultTokenGrant } from './vault-config';
import { issueDynamicGrant, revokeDynamic } from './dynamic-grant';
import { issueKvGrant } from './kv-grant';
import { issueTokenGrant } from './token-grant';
import { revokeAccessor, revokeByMarker, stageMarker } from './stage-token';
import { readTokenLookup } from './vault-wire';

const KINDS = ['vault-token', 'aws', 'secret'] as const satisfies readonly CredentialKind[];

export interface VaultProviderDeps extends ProviderDeps {
  /** Where `tokenEnv`/`secretIdEnv` are looked up. Default: `process.env` (read only at login). */
  readonly env?: Environment;
  /** Backoff sleep between retries; tests may shorten it. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** The write-ahead intent: enough to find and revoke what `issue` may have minted. */
interface VaultIntent {
  readonly grantType: VaultGrant['type'];
  readonly marker: string;
  /** ISO time by which any token of this grant is dead (its explicit_max_ttl). */
  readonly notAfter: string;
}

function readIntent(intent: Handle): VaultIntent {
  const { grantType, marker, notAfter } = intent;
  if ((grantType !== 'token' && grantType !== 'dynamic' && grantType !== 'kv') || typeof marker !== 'string' || typeof notAfter !== 'string') {
    throw new TypeError('vault provider: not a vault intent handle');
  }
  return { grantType, marker, notAfter };
}

const str = (h: Handle | undefined, key: string): string | undefined => {
  const v = h?.[key];
  return typeof v === 'string' && v ? v : undefined;
};

class VaultProvider implements Provider<VaultGrant> {
  readonly type = 'vault';
  readonly kinds = KINDS;
  private readonly client: VaultClient;

  constructor(
    readonly name: string,
    private readonly config: VaultConfig,
    private readonly deps: VaultProviderDeps,
  ) {
    this.client = createVaultClient(config, {
      logger: deps.logger,
      now: deps.now,
      env: deps.env ?? process.env,
      ...(deps.sleep ? { sleep: deps.sleep } : {}),
    });
  }

  prepare(grant: GrantSpec<VaultGrant>, ctx: StageContext): Handle {
    return {
      grantType: grant.params.type,
      marker: stageMarker(ctx.stageId, grant.name),
      notAfter: ctx.maxExpiresAt.toISOString(),
      ...(this.config.namespace ? { namespace: this.config.namespace } : {}),
    };
  }

  async issue(grant: GrantSpec<VaultGrant>, ctx: StageContext, _intent: Handle): Promise<IssuedCredential> {
    const now = this.deps.now();
    const p = grant.params;
    let issued: IssuedCredential;
    switch (p.type) {
      case 'token':
        issued = await issueTokenGrant(this.client, grant as GrantSpec<VaultTokenGrant>, ctx, now);
        break;
      case 'dynamic':
        issued = await issueDynamicGrant(this.client, grant as GrantSpec<VaultDynamicGrant>, ctx, now, this.deps.logger);
        break;
      case 'kv':
        issued = await issueKvGrant(this.client, grant as GrantSpec<VaultKvGrant>, ctx);
        break;
    }
    this.deps.logger.info(
      { provider: this.name, stageId: ctx.stageId, grant: grant.name, grantType: p.type, revocation: issued.revocation, expiresAt: issued.expiresAt.toISOString() },
      'vault credential issued',
    );
    return issued;
  }

  async revoke(intentHandle: Handle, issued: Handle | undefined): Promise<RevokeResult> {
    const intent = readIntent(intentHandle);
    const now = this.deps.now();
    let result: RevokeResult;
    if (intent.grantType === 'kv') {
      result = { method: 'none', effectiveAt: now };
    } else if (intent.grantType === 'token' && str(issued, 'accessor')) {
      await revokeAccessor(this.client, str(issued, 'accessor')!);
      result = { method: 'native', effectiveAt: now };
    } else if (intent.grantType === 'dynamic' && str(issued, 'ownerAccessor')) {
      await revokeDynamic(this.client, { ownerAccessor: str(issued, 'ownerAccessor')!, leaseId: str(issued, 'leaseId') ?? null });
      const expiresAt = str(issued, 'expiresAt');
      result = issued?.revocation === 'expiry' && expiresAt ? { method: 'expiry', effectiveAt: new Date(expiresAt) } : { method: 'native', effectiveAt: now };
    } else {
      // Only the intent survived (crash between mint and record, or a half-done issue):
      // find the stage's token by its marker. Revoking it also revokes any lease it owns.
      const found = await revokeByMarker(this.client, intent.marker);
      result = found === 'forbidden' ? { method: 'expiry', effectiveAt: new Date(intent.notAfter) } : { method: 'native', effectiveAt: now };
      this.deps.logger.info(
        { provider: this.name, marker: intent.marker, found: found === 'forbidden' ? null : found.revoked, method: result.method },
        found === 'forbidden' ? 'vault: cannot list token accessors; the token TTL is the backstop' : 'vault: revoked by stage marker',
      );
    }
    return result;
  }

  async ready(): Promise<void> {
    const res = await this.client.call({ operation: 'look up own token', method: 'GET', path: 'auth/token/lookup-self' });
    readTokenLookup(res, 'look up own token');
  }
}

/** Create a `vault` provider instance from validated config. No I/O beyond reading TLS files. */
export function createVaultProvider(name: string, config: VaultConfig, deps: VaultProviderDeps): Provider<VaultGrant> {
  return new VaultProvider(name, config, deps);
}

/** The `vault` provider type for the broker's registry. */
export const vaultProviderFactory: ProviderFactory<VaultConfig, VaultGrant> = {
  type: 'vault',
  configSchema: vaultConfigSchema,
  grantSchema: vaultGrantSchema,
  create: (name, config, deps) => createVaultProvider(name, config, deps),
};
