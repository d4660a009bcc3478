/**
 * A "world" for end-to-end tests of the real providers through a real broker: the
 * three wire-faithful cloud fakes (STS/IAM, Vault, IAM Credentials), an OIDC issuer,
 * the broker's own identities at each cloud, one shared test clock, and a broker config
 * that uses all three providers. `startWorldBroker` starts an in-process broker (real
 * HTTP on 127.0.0.1:0, SQLite file in the world's folder) and can be called again on
 * the same folder to simulate a restart after a crash.
 *
 * How each provider is wired, and why:
 * - `vault` purely from YAML (address, token-file auth): nothing needs injecting.
 * - `aws` from YAML (region, endpoints, role, claim tags) plus the broker's own AWS keys
 *   injected with `createAwsStsProvider(..., { credentials })`: the provider has no
 *   config field for its own credentials on purpose (SDK default chain only).
 * - `gcp` from YAML (endpoint on loopback http) plus the broker's own OAuth client
 *   injected with `createGcpIamProvider(..., { authClient })`: same reason (ADC only).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { OAuth2Client } from 'google-auth-library';
import { buildConfig } from '../../../broker/config/load-config';
import { startBroker, type RunningBroker } from '../../../broker/start-broker';
import type { Provider } from '../../../providers/provider';
import { awsStsConfigSchema, createAwsStsProvider } from '../../../providers/aws-sts';
import { createGcpIamProvider, gcpIamConfigSchema } from '../../../providers/gcp-iam';
import { startFakeAws, type FakeAws } from '../../fakes/aws-sts-iam';
import { startFakeGcpIam, type FakeGcpIam } from '../../fakes/gcp-iam';
import { startFakeOidcIssuer, type FakeOidcIssuer } from '../../fakes/oidc-issuer';
import { startFakeVault, type FakeVault, type PolicyRules } from '../../fakes/vault';
import { buildClaims, call, type ConfigObject } from '../../harness/broker';
import { createCapturedLogger, type CapturedLogger } from '../../harness/capture-logger';
import { createTestClock, type TestClock } from './test-clock';

/** The broker's own long-term AWS key at the fake (its IRSA role in production). SECRET. */
export const AWS_BROKER_KEY = { accessKeyId: 'AKIASTAGEGATEE2E0001', secretAccessKey: `e2e-aws-broker-secret-${randomBytes(12).toString('hex')}` };
/** The broker's own Google OAuth token (its Workload Identity in production). SECRET. */
export const GCP_BROKER_TOKEN = `ya29.e2e-broker-own-${randomBytes(12).toString('hex')}`;
export const GCP_BROKER_PRINCIPAL = 'serviceAccount:stagegate-broker@ops-project.iam.gserviceaccount.com';
/** The service account the stages get tokens of. */
export const GCP_DEPLOYER = 'deployer@app-project.iam.gserviceaccount.com';
export const AWS_ROLE = 'stagegate-deploy';
export const AWS_SECOND_ROLE = 'chained-target';
export const DENY_POLICY = 'stagegate-revocations';
/** A value in Vault KV handed out by a `static: true` grant. SECRET. */
export const KV_NPM_TOKEN = `npm_${randomBytes(18).toString('hex')}`;
/** A value in Vault KV the stage's token may read (policy `app-read`). SECRET. */
export const KV_APP_PASSWORD = `app-pw-${randomBytes(12).toString('hex')}`;
/** The longest stage name the broker accepts (its stage-name rule: 1-63 characters). */
export const LONGEST_STAGE = `s${'-long-name'.repeat(6)}xx`;

/** What the broker's own Vault token may do (docs/providers/vault.md, "A Vault policy for the broker"). */
const VAULT_BROKER_POLICY: PolicyRules = {
  'auth/token/create-orphan': ['create', 'update', 'sudo'],
  'auth/token/revoke-accessor': ['update'],
  'auth/token/lookup-accessor': ['update'],
  'auth/token/accessors': ['list', 'sudo'],
  'sys/leases/revoke': ['update'],
  'secret/data/ci/*': ['read'],
};
export const VAULT_POLICIES: Record<string, PolicyRules> = {
  broker: VAULT_BROKER_POLICY,
  // Without the accessor listing: crash recovery cannot find tokens and reports the TTL backstop.
  'broker-nolist': Object.fromEntries(Object.entries(VAULT_BROKER_POLICY).filter(([p]) => p !== 'auth/token/accessors')),
  'app-read': { 'secret/data/app/*': ['read'] },
  'db-app': { 'database/creds/app': ['read'] },
};

export interface ProviderWorld {
  readonly dir: string;
  readonly clock: TestClock;
  readonly issuer: FakeOidcIssuer;
  readonly aws: FakeAws;
  readonly awsRoleArn: string;
  readonly awsSecondRoleArn: string;
  readonly vault: FakeVault;
  readonly gcp: FakeGcpIam;
  /** Files holding the broker's Vault token, by broker policy (`broker`, `broker-nolist`). */
  readonly vaultTokenFiles: Readonly<Record<'broker' | 'broker-nolist', string>>;
  /** The broker's own secrets at every cloud: they must never leak either. */
  readonly brokerSecrets: readonly string[];
  close(): Promise<void>;
}

/** Start the fakes and the issuer, with the broker's identities and the stage roles set up. */
export async function startProviderWorld(): Promise<ProviderWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'stagegate-e2e-'));
  const clock = createTestClock();
  const issuer = await startFakeOidcIssuer();
  const aws = await startFakeAws();
  aws.addAccessKey(AWS_BROKER_KEY.accessKeyId, AWS_BROKER_KEY.secretAccessKey);
  const awsRoleArn = aws.createRole(AWS_ROLE, { maxSessionDuration: 3600 });
  const awsSecondRoleArn = aws.createRole(AWS_SECOND_ROLE);
  const vault = await startFakeVault({ policies: VAULT_POLICIES, startTime: new Date(clock.now()) });
  vault.addDatabaseRole('app', { ttlSeconds: 3600 });
  vault.seedKv('ci/npm', { token: KV_NPM_TOKEN });
  vault.seedKv('app/config', { password: KV_APP_PASSWORD });
  const gcp = await startFakeGcpIam({
    serviceAccounts: [GCP_DEPLOYER],
    callers: { [GCP_BROKER_TOKEN]: GCP_BROKER_PRINCIPAL },
    tokenCreators: { [GCP_DEPLOYER]: [GCP_BROKER_PRINCIPAL] },
    startTimeMs: clock.now(),
  });
  clock.onAdvance((now, step) => {
    aws.advanceClock(step);
    vault.advance(step / 1000);
    gcp.setClock(now);
  });
  const vaultTokens: string[] = [];
  const tokenFile = (policy: 'broker' | 'broker-nolist'): string => {
    const { token } = vault.createToken({ policies: [policy] });
    vaultTokens.push(token);
    const file = join(dir, `vault-${policy}.token`);
    // A trailing newline, as a Vault Agent sink or `echo` writes it.
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return file;
  };
  const vaultTokenFiles = { broker: tokenFile('broker'), 'broker-nolist': tokenFile('broker-nolist') };
  return {
    dir,
    clock,
    issuer,
    aws,
    awsRoleArn,
    awsSecondRoleArn,
    vault,
    gcp,
    vaultTokenFiles,
    brokerSecrets: [AWS_BROKER_KEY.secretAccessKey, GCP_BROKER_TOKEN, vault.rootToken, ...vaultTokens],
    async close() {
      await Promise.allSettled([issuer.close(), aws.close(), vault.close(), gcp.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Grants used by the stages below, as a policy author writes them (provider params inline). */
export const GRANTS = {
  aws: { name: 'aws', provider: 'aws' },
  vaultToken: { name: 'vault-token', provider: 'vault', type: 'token', policies: ['app-read'] },
  vaultDb: { name: 'db', provider: 'vault', type: 'dynamic', path: 'database/creds/app', policies: ['db-app'] },
  vaultKv: { name: 'npm', provider: 'vault', type: 'kv', path: 'ci/npm', static: true },
  gcp: { name: 'gcp', provider: 'gcp', serviceAccount: GCP_DEPLOYER },
} as const;

/**
 * The broker config (before validation): issuer `ci` with a build key made of claims
 * (any characters, any length), the three providers, and rule `e2e` with its stages.
 */
export function worldConfig(world: ProviderWorld): ConfigObject {
  const g = GRANTS;
  return {
    listen: { host: '127.0.0.1', port: 0 },
    store: { sqlite: { path: join(world.dir, 'broker.db') } },
    logging: { level: 'debug' },
    reaper: { intervalMs: 100, revokeBackoffInitialMs: 50, revokeBackoffMaxMs: 200 },
    issuers: [
      {
        name: 'ci',
        issuer: world.issuer.issuer,
        jwksUri: world.issuer.jwksUri,
        audience: 'stagegate',
        buildKey: '{repository}/{workflow}/{run_id}/{run_attempt}',
      },
    ],
    providers: {
      aws: {
        type: 'aws-sts',
        region: 'us-east-1',
        endpoint: { sts: world.aws.url, iam: world.aws.url },
        roleArn: world.awsRoleArn,
        roleArns: [world.awsRoleArn],
        claimTags: { workflow: 'workflow', actor: 'actor', ref: 'ref' },
        maxAttempts: 1,
      },
      vault: {
        type: 'vault',
        address: world.vault.url,
        auth: { method: 'token', tokenFile: world.vaultTokenFiles.broker },
        timeoutMs: 2000,
        retry: { attempts: 1, baseDelayMs: 1 },
      },
      gcp: {
        type: 'gcp-iam',
        endpoint: { host: world.gcp.host, port: world.gcp.port, protocol: 'http' },
        lifetimeSeconds: 600,
        refreshBeforeSeconds: 360,
        requestTimeoutMs: 2000,
        maxAttempts: 1,
      },
    },
    rules: [
      {
        name: 'e2e',
        issuer: 'ci',
        claims: { repository: 'acme/web' },
        stages: {
          'aws-deploy': { ttl: '15m', heartbeat: '30s', grants: [g.aws] },
          'vault-deploy': { ttl: '15m', maxTtl: '1h', heartbeat: '30s', grants: [g.vaultToken, g.vaultDb, g.vaultKv] },
          'gcp-deploy': { ttl: '30m', maxTtl: '1h', heartbeat: '10m', grants: [g.gcp] },
          'all-three': { ttl: '15m', maxTtl: '1h', heartbeat: '10m', grants: [g.aws, g.vaultToken, g.vaultDb, g.gcp] },
          [LONGEST_STAGE]: { ttl: '15m', heartbeat: '30s', grants: [g.aws, g.vaultToken] },
        },
      },
    ],
  };
}

/**
 * Provider instances for the broker, built from the (validated) YAML sections plus the
 * broker's own cloud identities. Fresh instances per broker: `close()` closes them.
 */
export function worldProviders(world: ProviderWorld, config: ConfigObject, log: CapturedLogger): Map<string, Provider<any>> {
  const deps = (name: string) => ({ logger: log.logger.child({ provider: name }), now: () => new Date(world.clock.now()) });
  const providers = new Map<string, Provider<any>>();
  if (config.providers.aws) {
    providers.set('aws', createAwsStsProvider('aws', awsStsConfigSchema.parse(config.providers.aws), deps('aws'), { credentials: AWS_BROKER_KEY }));
  }
  if (config.providers.gcp) {
    const authClient = new OAuth2Client({ transporterOptions: { fetchImplementation: fetch } });
    authClient.setCredentials({ access_token: GCP_BROKER_TOKEN, expiry_date: Date.now() + 3600_000 });
    providers.set('gcp', createGcpIamProvider('gcp', gcpIamConfigSchema.parse(config.providers.gcp), deps('gcp'), { authClient, retryBaseDelayMs: 5 }));
  }
  return providers;
}

export interface WorldBroker {
  readonly url: string;
  readonly broker: RunningBroker;
  /** Every line the broker and its providers logged. */
  readonly log: CapturedLogger;
  readonly dbPath: string;
  readonly config: ConfigObject;
  /** A fresh identity token for a fresh build (new run_id), with claim overrides. */
  mintToken(claims?: Record<string, unknown>): Promise<string>;
  /** POST /v1/stages with a fresh identity token. */
  open(stage: string, claims?: Record<string, unknown>): Promise<{ status: number; body: any; text: string }>;
  close(): Promise<void>;
}

export interface WorldBrokerOptions {
  /** Change the config before it is validated. */
  readonly configure?: (config: ConfigObject) => void;
}

/** Start a broker on the world's folder (same SQLite file every time: a restart keeps its state). */
export async function startWorldBroker(world: ProviderWorld, options: WorldBrokerOptions = {}): Promise<WorldBroker> {
  const config = worldConfig(world);
  options.configure?.(config);
  const loaded = buildConfig(config, world.dir);
  const log = createCapturedLogger();
  const broker = await startBroker(loaded, { logger: log.logger, now: world.clock.now, providers: worldProviders(world, config, log) });
  const mintToken = (claims: Record<string, unknown> = {}) => world.issuer.sign(buildClaims(claims));
  return {
    url: broker.url,
    broker,
    log,
    dbPath: loaded.raw.store.sqlite!.path,
    config,
    mintToken,
    async open(stage, claims = {}) {
      return call(broker.url, 'POST', '/v1/stages', { token: await mintToken(claims), body: { stage } });
    },
    close: () => broker.close(),
  };
}
