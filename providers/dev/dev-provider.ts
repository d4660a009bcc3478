/**
 * The `dev` provider: DEMO credentials for trying stagegate with no cloud account.
 * Every value says it is a demo value. What it mints is really tracked (see
 * DevLedger), so revocation is observable: `check(value)` answers `revoked` after the
 * stage closed. Never use it to protect anything.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { StagegateError } from '../../sdk/errors';
import type {
  CredentialKind,
  GrantSpec,
  Handle,
  IssuedCredential,
  Provider,
  ProviderDeps,
  ProviderFactory,
  RevokeResult,
  StageContext,
} from '../provider';
import { DevLedger, type DevCredentialState } from './dev-ledger';

const KINDS = ['aws', 'gcp-access-token', 'vault-token', 'secret'] as const satisfies readonly CredentialKind[];

export const devConfigSchema = z
  .object({
    type: z.literal('dev'),
    /** SQLite file for the ledger; `:memory:` (default) forgets on restart. */
    ledger: z.string().min(1).default(':memory:'),
    /** Test knob: the first N revocations fail with PROVIDER_UNAVAILABLE (to watch the reaper retry). */
    failRevocations: z.number().int().min(0).default(0),
  })
  .strict();

export const devGrantSchema = z
  .object({
    kind: z.enum(KINDS).default('aws'),
    /** Free-form scope strings, echoed in the demo values' metadata. */
    scope: z.array(z.string().min(1)).default([]),
    /** For kind `secret`: the names of the values to mint. */
    values: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/)).min(1).default(['value']),
    /** Test knob: make issuing this grant fail (`unavailable` → 503, `rejected` → 502). */
    failIssue: z.enum(['unavailable', 'rejected']).optional(),
  })
  .strict();

export type DevConfig = z.infer<typeof devConfigSchema>;
export type DevGrant = z.infer<typeof devGrantSchema>;

export interface DevCheckResult {
  readonly known: boolean;
  readonly state: DevCredentialState;
  readonly grant?: string;
  readonly stageId?: string;
}

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');
const rand = (bytes: number) => randomBytes(bytes).toString('hex');

export class DevProvider implements Provider<DevGrant> {
  readonly type = 'dev';
  readonly kinds = KINDS;
  private readonly ledger: DevLedger;
  private revocationFailuresLeft: number;

  constructor(
    readonly name: string,
    config: DevConfig,
    private readonly deps: ProviderDeps,
  ) {
    this.ledger = new DevLedger(config.ledger);
    this.revocationFailuresLeft = config.failRevocations;
  }

  prepare(grant: GrantSpec<DevGrant>, ctx: StageContext): Handle {
    return { stageId: ctx.stageId, grant: grant.name };
  }

  async issue(grant: GrantSpec<DevGrant>, ctx: StageContext): Promise<IssuedCredential> {
    if (grant.params.failIssue === 'unavailable') throw new StagegateError('PROVIDER_UNAVAILABLE', `dev provider '${this.name}' simulated an outage`);
    if (grant.params.failIssue === 'rejected') throw new StagegateError('PROVIDER_REJECTED', `dev provider '${this.name}' simulated a refusal`);
    const credentialId = `dev-${rand(8)}`;
    const values = this.mint(grant.params);
    this.ledger.record(
      { credentialId, stageId: ctx.stageId, grant: grant.name, expiresAt: ctx.expiresAt.getTime() },
      Object.values(values).map(sha256),
    );
    return {
      kind: grant.params.kind,
      values,
      meta: { provider: 'dev (demo credentials, not real)', scope: grant.params.scope.join(' '), region: 'dev-local-1' },
      expiresAt: ctx.expiresAt,
      handle: { credentialId },
      revocation: 'native',
    };
  }

  async revoke(intent: Handle, issued: Handle | undefined): Promise<RevokeResult> {
    if (this.revocationFailuresLeft > 0) {
      this.revocationFailuresLeft--;
      throw new StagegateError('PROVIDER_UNAVAILABLE', `dev provider '${this.name}' simulated an outage at revoke`);
    }
    const now = this.deps.now();
    if (issued && typeof issued.credentialId === 'string') this.ledger.revoke(issued.credentialId, now.getTime());
    else this.ledger.revokeByGrant(String(intent.stageId), String(intent.grant), now.getTime());
    return { method: 'native', effectiveAt: now };
  }

  /** Is this demo value live? Looks it up by digest; the value is never stored. */
  check(value: string): DevCheckResult {
    const entry = this.ledger.lookup(sha256(value));
    if (!entry) return { known: false, state: 'unknown' };
    const state: DevCredentialState =
      entry.revokedAt !== null ? 'revoked' : entry.expiresAt <= this.deps.now().getTime() ? 'expired' : 'active';
    return { known: true, state, grant: entry.grant, stageId: entry.stageId };
  }

  async close(): Promise<void> {
    this.ledger.close();
  }

  private mint(params: DevGrant): Record<string, string> {
    switch (params.kind) {
      case 'aws':
        return {
          accessKeyId: `ASIADEMO${rand(6).toUpperCase()}`,
          secretAccessKey: `demo-secret-not-real-${rand(12)}`,
          sessionToken: `demo-session-not-real-${rand(24)}`,
        };
      case 'gcp-access-token':
        return { accessToken: `ya29.demo-not-real-${rand(24)}` };
      case 'vault-token':
        return { token: `hvs.demo-not-real-${rand(16)}` };
      case 'secret':
        return Object.fromEntries(params.values.map((k) => [k, `demo-not-real-${rand(16)}`]));
    }
  }
}

export const devProviderFactory: ProviderFactory<DevConfig, DevGrant> = {
  type: 'dev',
  configSchema: devConfigSchema,
  grantSchema: devGrantSchema,
  create: (name, config, deps) => new DevProvider(name, config, deps),
};
