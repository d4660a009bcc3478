/**
 * The `vault` provider against the wire-faithful fake Vault, through the real
 * node-vault client. Every secret the fake or the test creates is collected and the
 * captured log lines, errors, intents and handles are scanned for it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import nodeVault from 'node-vault';
import pino from 'pino';
import { isStagegateError, StagegateError } from '../../sdk/errors';
import type { GrantSpec, Handle, Provider, StageContext } from '../../providers/provider';
import { createVaultProvider, vaultConfigSchema, vaultGrantSchema, vaultProviderFactory, type VaultGrant } from '../../providers/vault';
import { startFakeVault, type FakeVault, type PolicyRules } from '../fakes/vault';

const BROKER_POLICY: PolicyRules = {
  'auth/token/create-orphan': ['create', 'update', 'sudo'],
  'auth/token/revoke-accessor': ['update'],
  'auth/token/lookup-accessor': ['update'],
  'auth/token/accessors': ['list', 'sudo'],
  'sys/leases/revoke': ['update'],
  'secret/data/ci/*': ['read'],
};
const POLICIES: Record<string, PolicyRules> = {
  broker: BROKER_POLICY,
  // Same, but without the accessor listing: crash recovery must fall back to the TTL.
  'broker-nolist': Object.fromEntries(Object.entries(BROKER_POLICY).filter(([p]) => p !== 'auth/token/accessors')),
  // Cannot create orphans with arbitrary policies (no sudo).
  'broker-nosudo': { ...BROKER_POLICY, 'auth/token/create-orphan': ['create', 'update'] },
  'app-read': { 'secret/data/app/*': ['read'] },
  'db-app': { 'database/creds/app': ['read'] },
  'aws-deploy': { 'aws/creds/deploy': ['read'], 'aws/sts/deploy': ['create', 'update'] },
};

let fake: FakeVault;
let lines: string[];
let secrets: Set<string>;
let tmp: string;

function capture() {
  return pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
}

const noSleep = () => Promise.resolve();

function stageCtx(over: Partial<StageContext> = {}): StageContext {
  const now = fake.now();
  return {
    stageId: `st-${randomBytes(6).toString('hex')}`,
    build: 'acme/web/123/1',
    stage: 'deploy',
    rule: 'deploy-main',
    issuer: 'github',
    claims: { repository: 'acme/web' },
    expiresAt: new Date(now + 15 * 60_000),
    maxExpiresAt: new Date(now + 60 * 60_000),
    ...over,
  };
}

function grant(params: Record<string, unknown>, name = 'vault-grant'): GrantSpec<VaultGrant> {
  return { name, provider: 'vault', params: vaultGrantSchema.parse(params) };
}

/** A provider logged in with a broker token of the given policy (token method, token in a file). */
function brokerProvider(opts: { policy?: string; namespace?: string; attempts?: number } = {}): { provider: Provider<VaultGrant>; brokerToken: string } {
  const { token } = fake.createToken({ policies: [opts.policy ?? 'broker'], namespace: opts.namespace });
  secrets.add(token);
  const tokenFile = join(tmp, `broker-token-${randomBytes(4).toString('hex')}`);
  writeFileSync(tokenFile, `${token}\n`);
  const config = vaultConfigSchema.parse({
    type: 'vault',
    address: fake.url,
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    auth: { method: 'token', tokenFile },
    retry: { attempts: opts.attempts ?? 3, baseDelayMs: 1 },
  });
  return { provider: createVaultProvider('vault-main', config, { logger: capture(), now: () => new Date(fake.now()), sleep: noSleep }), brokerToken: token };
}

/** A node-vault client acting as the stage process would, with the issued token. */
function stageClient(token: string, namespace?: string) {
  return nodeVault({ endpoint: fake.url, token, ...(namespace ? { namespace } : {}) });
}

async function expectCode(p: Promise<unknown>, code: StagegateError['code']): Promise<StagegateError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(isStagegateError(err)).toBe(true);
  expect((err as StagegateError).code).toBe(code);
  // Log it the way the broker would: pino serialises message, details and cause.
  capture().error({ err }, 'provider failed');
  // …and the way console.error / util.inspect would: every property, the cause chain included.
  lines.push(JSON.stringify((err as StagegateError).toJSON()), String((err as Error).stack), inspect(err, { depth: 12 }));
  return err as StagegateError;
}

/** Nothing secret in any log line, error, intent or handle seen by the test. */
function expectNoSecretsIn(...extra: unknown[]) {
  const haystack = [...lines, ...extra.map((e) => JSON.stringify(e))].join('\n');
  for (const s of secrets) expect(haystack.includes(s)).toBe(false);
}

beforeEach(async () => {
  fake = await startFakeVault({ policies: POLICIES, namespaces: ['team-a'] });
  lines = [];
  secrets = new Set([fake.rootToken]);
  tmp = mkdtempSync(join(tmpdir(), 'stagegate-vault-'));
});
afterEach(async () => {
  expectNoSecretsIn();
  await fake.close();
});

describe('vault provider config', () => {
  it('rejects a kv grant without static: true, naming the field', () => {
    const r = vaultGrantSchema.safeParse({ type: 'kv', path: 'ci/npm' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['static']);
    expect(vaultGrantSchema.safeParse({ type: 'kv', path: 'ci/npm', static: false }).success).toBe(false);
    expect(vaultGrantSchema.parse({ type: 'kv', path: 'ci/npm', static: true })).toMatchObject({ mount: 'secret' });
  });

  it('never accepts a secret inline in the YAML', () => {
    const base = { type: 'vault', address: 'https://vault.example.com:8200' };
    expect(vaultConfigSchema.safeParse({ ...base, auth: { method: 'token', token: 'hvs.x' } }).success).toBe(false);
    expect(vaultConfigSchema.safeParse({ ...base, auth: { method: 'approle', roleId: 'r', secretId: 's', secretIdEnv: 'X' } }).success).toBe(false);
    expect(vaultConfigSchema.safeParse({ ...base, auth: { method: 'jwt', role: 'r', jwt: 'e.y.j', jwtFile: '/f' } }).success).toBe(false);
    expect(vaultConfigSchema.safeParse({ ...base, auth: { method: 'token', tokenFile: '/a', tokenEnv: 'B' } }).success).toBe(false);
    const k8s = vaultConfigSchema.parse({ ...base, auth: { method: 'kubernetes', role: 'stagegate' } });
    expect(k8s.auth).toEqual({ method: 'kubernetes', role: 'stagegate', jwtFile: '/var/run/secrets/kubernetes.io/serviceaccount/token', mount: 'kubernetes' });
  });

  it('validates grant shapes: policies required, paths without "..", durations', () => {
    expect(vaultGrantSchema.safeParse({ type: 'token', policies: [] }).success).toBe(false);
    expect(vaultGrantSchema.safeParse({ type: 'dynamic', path: 'database/../sys/raw' }).success).toBe(false);
    expect(vaultGrantSchema.safeParse({ type: 'token', policies: ['a'], ttl: '15 minutes' }).success).toBe(false);
    expect(vaultGrantSchema.parse({ type: 'token', policies: ['a'], ttl: '1h30m' })).toMatchObject({ renewable: true, numUses: 0 });
    expect(vaultProviderFactory.type).toBe('vault');
  });
});

describe('token grant', () => {
  it('issues an orphan token bounded by the stage, which works until revoked', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] }, 'app');
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    secrets.add(cred.values.token!);
    expect(cred.kind).toBe('vault-token');
    expect(cred.revocation).toBe('native');
    expect(cred.meta).toEqual({ vaultAddress: fake.url });
    expect(Object.keys(cred.handle)).toEqual(['accessor']);
    expect(cred.expiresAt.getTime()).toBe(ctx.expiresAt.getTime());

    const info = fake.tokenByAccessor(cred.handle.accessor as string)!;
    expect(info.orphan).toBe(true);
    expect(info.policies).toEqual(['app-read', 'default']);
    expect(info.creationTtl).toBe(15 * 60);
    expect(info.explicitMaxTtl).toBe(60 * 60);
    expect(info.meta).toMatchObject({ stagegate_marker: `${ctx.stageId}/app`, stagegate_stage: 'deploy', stagegate_build: 'acme/web/123/1', stagegate_rule: 'deploy-main' });

    fake.seedKv('app/config', { greeting: 'hello' });
    const stage = stageClient(cred.values.token!);
    await expect(stage.tokenLookupSelf()).resolves.toMatchObject({ data: { accessor: cred.handle.accessor } });
    await expect(stage.read('secret/data/app/config')).resolves.toMatchObject({ data: { data: { greeting: 'hello' } } });
    await expect(stage.read('secret/data/ci/npm')).rejects.toMatchObject({ response: { statusCode: 403 } });

    await expect(provider.revoke(intent, cred.handle)).resolves.toEqual({ method: 'native', effectiveAt: new Date(fake.now()) });
    await expect(stage.tokenLookupSelf()).rejects.toMatchObject({ response: { statusCode: 403, body: { errors: ['permission denied'] } } });
    // Idempotent: Vault says "invalid accessor" for a revoked token; that is success.
    await expect(provider.revoke(intent, cred.handle)).resolves.toMatchObject({ method: 'native' });
    expectNoSecretsIn(intent, cred.handle, cred.meta);
  });

  it('cannot outlive the stage max TTL, even when renewed', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const cred = await provider.issue(grant({ type: 'token', policies: ['app-read'] }), ctx, provider.prepare(grant({ type: 'token', policies: ['app-read'] }), ctx));
    secrets.add(cred.values.token!);
    const stage = stageClient(cred.values.token!);
    fake.advance(14 * 60);
    const renewed = await stage.write('auth/token/renew-self', { increment: '24h' });
    expect(renewed.auth.lease_duration).toBe(46 * 60);
    fake.advance(46 * 60 + 1);
    expect(fake.isTokenValid(cred.values.token!)).toBe(false);
    await expect(stage.tokenLookupSelf()).rejects.toMatchObject({ response: { statusCode: 403 } });
  });

  it('stops working after numUses requests', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'], numUses: 2 });
    const cred = await provider.issue(g, ctx, provider.prepare(g, ctx));
    secrets.add(cred.values.token!);
    fake.seedKv('app/one', { v: '1' });
    const stage = stageClient(cred.values.token!);
    await expect(stage.read('secret/data/app/one')).resolves.toBeDefined();
    await expect(stage.read('secret/data/app/one')).resolves.toBeDefined();
    await expect(stage.read('secret/data/app/one')).rejects.toMatchObject({ response: { statusCode: 403 } });
  });

  it('after a crash between create and record, finds the token by its marker and revokes it', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] }, 'app');
    const intent = provider.prepare(g, ctx);
    const other = await provider.issue(grant({ type: 'token', policies: ['app-read'] }, 'other'), ctx, intent);
    const lost = await provider.issue(g, ctx, intent); // the broker "crashed" before recording this handle
    secrets.add(lost.values.token!).add(other.values.token!);
    const result = await provider.revoke(intent, undefined);
    expect(result.method).toBe('native');
    expect(fake.isTokenValid(lost.values.token!)).toBe(false);
    // Only the token with this grant's marker was touched.
    expect(fake.isTokenValid(other.values.token!)).toBe(true);
    expectNoSecretsIn(intent);
  });

  it('without permission to list accessors, reports the TTL backstop honestly', async () => {
    const { provider } = brokerProvider({ policy: 'broker-nolist' });
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] });
    const intent = provider.prepare(g, ctx);
    await provider.issue(g, ctx, intent).then((c) => secrets.add(c.values.token!));
    await expect(provider.revoke(intent, undefined)).resolves.toEqual({ method: 'expiry', effectiveAt: ctx.maxExpiresAt });
    expect(lines.some((l) => l.includes('TTL is the backstop'))).toBe(true);
  });

  it('mints in the configured namespace only', async () => {
    const { provider } = brokerProvider({ namespace: 'team-a' });
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] });
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    secrets.add(cred.values.token!);
    expect(cred.meta).toEqual({ vaultAddress: fake.url, namespace: 'team-a' });
    expect(fake.tokenByAccessor(cred.handle.accessor as string, 'team-a')).toBeDefined();
    expect(fake.tokenByAccessor(cred.handle.accessor as string)).toBeUndefined();
    expect(fake.requests.filter((r) => r.path === 'auth/token/create-orphan').map((r) => r.namespace)).toEqual(['team-a']);
    await expect(stageClient(cred.values.token!, 'team-a').tokenLookupSelf()).resolves.toBeDefined();
    await expect(stageClient(cred.values.token!).tokenLookupSelf()).rejects.toMatchObject({ response: { statusCode: 403 } });
    await provider.revoke(intent, cred.handle);
    expect(fake.isTokenValid(cred.values.token!, 'team-a')).toBe(false);
  });
});

describe('dynamic grant', () => {
  beforeEach(() => {
    fake.addDatabaseRole('app', { ttlSeconds: 600 });
    fake.addAwsRole('deploy', { credentialType: 'iam_user', ttlSeconds: 900 });
  });

  it('issues database credentials under a per-stage lease owner, and revokes the lease', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'dynamic', path: 'database/creds/app', policies: ['db-app'] }, 'db');
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    secrets.add(cred.values.password!);
    expect(cred.kind).toBe('secret');
    expect(cred.revocation).toBe('native');
    expect(Object.keys(cred.values).sort()).toEqual(['password', 'username']);
    expect(fake.isDatabaseUserValid(cred.values.username!)).toBe(true);
    const lease = fake.leases().find((l) => l.leaseId === cred.handle.leaseId)!;
    // The lease belongs to the per-stage owner token, not to the broker's login token.
    expect(lease.ownerAccessor).toBe(cred.handle.ownerAccessor);
    expect(fake.tokenByAccessor(lease.ownerAccessor)!.meta.stagegate_marker).toBe(`${ctx.stageId}/db`);
    expect(cred.expiresAt.getTime()).toBe(fake.now() + 600_000);

    await expect(provider.revoke(intent, cred.handle)).resolves.toMatchObject({ method: 'native' });
    expect(fake.isDatabaseUserValid(cred.values.username!)).toBe(false);
    expect(fake.tokenByAccessor(cred.handle.ownerAccessor as string)).toBeUndefined();
    await expect(provider.revoke(intent, cred.handle)).resolves.toMatchObject({ method: 'native' });
    expectNoSecretsIn(intent, cred.handle);
  });

  it('after a crash, revokes the lease through its marked owner token', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'dynamic', path: 'database/creds/app', policies: ['db-app'] }, 'db');
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    secrets.add(cred.values.password!);
    await expect(provider.revoke(intent, undefined)).resolves.toMatchObject({ method: 'native' });
    expect(fake.isDatabaseUserValid(cred.values.username!)).toBe(false);
  });

  it('bounds a lease by the stage max TTL when nothing could revoke it', async () => {
    fake.addDatabaseRole('long', { ttlSeconds: 24 * 3600, maxTtlSeconds: 48 * 3600 });
    fake.setPolicy('db-long', { 'database/creds/long': ['read'] });
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'dynamic', path: 'database/creds/long', policies: ['db-long'] });
    const cred = await provider.issue(g, ctx, provider.prepare(g, ctx));
    secrets.add(cred.values.password!);
    expect(cred.expiresAt).toEqual(ctx.maxExpiresAt);
    fake.advance(60 * 60);
    expect(fake.isDatabaseUserValid(cred.values.username!)).toBe(false);
  });

  it('maps AWS IAM-user keys to an aws credential and revokes them natively', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'dynamic', path: 'aws/creds/deploy', kind: 'aws', policies: ['aws-deploy'] });
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    secrets.add(cred.values.secretAccessKey!);
    expect(cred.kind).toBe('aws');
    expect(Object.keys(cred.values).sort()).toEqual(['accessKeyId', 'secretAccessKey']);
    expect(fake.isAwsKeyValid(cred.values.accessKeyId!)).toBe(true);
    await expect(provider.revoke(intent, cred.handle)).resolves.toMatchObject({ method: 'native' });
    expect(fake.isAwsKeyValid(cred.values.accessKeyId!)).toBe(false);
  });

  it('reports STS keys as expiry: revoking cannot invalidate them', async () => {
    fake.addAwsRole('deploy', { credentialType: 'assumed_role', ttlSeconds: 900 });
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'dynamic', path: 'aws/sts/deploy', method: 'PUT', body: { ttl: '900s' }, kind: 'aws', policies: ['aws-deploy'] });
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    secrets.add(cred.values.secretAccessKey!).add(cred.values.sessionToken!);
    expect(cred.revocation).toBe('expiry');
    expect(cred.handle.leaseId).toBeNull();
    const result = await provider.revoke(intent, cred.handle);
    expect(result).toEqual({ method: 'expiry', effectiveAt: new Date(fake.now() + 900_000) });
    expect(fake.isAwsKeyValid(cred.values.accessKeyId!)).toBe(true);
    fake.advance(901);
    expect(fake.isAwsKeyValid(cred.values.accessKeyId!)).toBe(false);
  });

  it('revokes the owner token when the secret read fails', async () => {
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'dynamic', path: 'database/creds/app', policies: ['app-read'] });
    await expectCode(provider.issue(g, ctx, provider.prepare(g, ctx)), 'PROVIDER_REJECTED');
    expect(fake.tokens().filter((t) => t.meta.stagegate_stage_id === ctx.stageId)).toEqual([]);
  });
});

describe('kv grant', () => {
  it('reads a KV v2 secret and reports that it cannot be revoked', async () => {
    fake.seedKv('ci/npm', { token: 'npm_SECRETVALUE123', registry: 'https://registry.npmjs.org', extra: { a: 1 } });
    secrets.add('npm_SECRETVALUE123');
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const g = grant({ type: 'kv', path: 'ci/npm', static: true });
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    expect(cred).toMatchObject({ kind: 'secret', revocation: 'none', handle: { mount: 'secret', path: 'ci/npm', version: 1 } });
    expect(cred.values).toEqual({ token: 'npm_SECRETVALUE123', registry: 'https://registry.npmjs.org', extra: '{"a":1}' });
    await expect(provider.revoke(intent, cred.handle)).resolves.toEqual({ method: 'none', effectiveAt: new Date(fake.now()) });
    expectNoSecretsIn(intent, cred.handle);
  });

  it('maps a 403 to PROVIDER_REJECTED and a missing secret to PROVIDER_REJECTED (404)', async () => {
    fake.seedKv('prod/db', { password: 'pw-SECRET-1' });
    secrets.add('pw-SECRET-1');
    const { provider } = brokerProvider();
    const ctx = stageCtx();
    const denied = grant({ type: 'kv', path: 'prod/db', static: true });
    const err = await expectCode(provider.issue(denied, ctx, provider.prepare(denied, ctx)), 'PROVIDER_REJECTED');
    expect(err.message).toBe('Vault read kv secret failed: HTTP 403 (permission denied)');
    expect(err.details).toMatchObject({ status: 403, vaultError: 'permission denied' });
    const missing = grant({ type: 'kv', path: 'ci/none', static: true });
    const err404 = await expectCode(provider.issue(missing, ctx, provider.prepare(missing, ctx)), 'PROVIDER_REJECTED');
    expect(err404.details).toMatchObject({ status: 404 });
  });
});

describe('failures', () => {
  it('when Vault is sealed at issue: PROVIDER_UNAVAILABLE after retrying only what is safe to retry', async () => {
    const { provider } = brokerProvider({ attempts: 3 });
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] });
    fake.setOutage({ status: 503 });
    const err = await expectCode(provider.issue(g, ctx, provider.prepare(g, ctx)), 'PROVIDER_UNAVAILABLE');
    expect(err.message).toBe('Vault create token failed: HTTP 503 (sealed)');
    // A sealed Vault did not act on the request, so even a create is retried.
    expect(fake.callCount('POST', 'auth/token/create-orphan')).toBe(3);
  });

  it('when Vault answers 500 to a create, does not retry it (it may have minted)', async () => {
    const { provider } = brokerProvider({ attempts: 3 });
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] });
    fake.setOutage({ status: 500 });
    await expectCode(provider.issue(g, ctx, provider.prepare(g, ctx)), 'PROVIDER_UNAVAILABLE');
    expect(fake.callCount('POST', 'auth/token/create-orphan')).toBe(1);
  });

  it('recovers from a brief outage by retrying an idempotent call', async () => {
    const { provider } = brokerProvider({ attempts: 3 });
    fake.setOutage({ status: 502, count: 2 });
    await expect(provider.ready!()).resolves.toBeUndefined();
    expect(fake.callCount('GET', 'auth/token/lookup-self')).toBe(3);
  });

  it('when Vault is down at revoke: a coded error, then a retry succeeds', async () => {
    const { provider } = brokerProvider({ attempts: 1 });
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] });
    const intent = provider.prepare(g, ctx);
    const cred = await provider.issue(g, ctx, intent);
    secrets.add(cred.values.token!);
    fake.setOutage({ status: 503 });
    await expectCode(provider.revoke(intent, cred.handle), 'PROVIDER_UNAVAILABLE');
    expect(fake.isTokenValid(cred.values.token!)).toBe(true);
    fake.setOutage(null);
    await expect(provider.revoke(intent, cred.handle)).resolves.toMatchObject({ method: 'native' });
    expect(fake.isTokenValid(cred.values.token!)).toBe(false);
  });

  it('when the broker may not grant the policies: PROVIDER_REJECTED', async () => {
    const { provider } = brokerProvider({ policy: 'broker-nosudo' });
    const ctx = stageCtx();
    const g = grant({ type: 'token', policies: ['app-read'] });
    const err = await expectCode(provider.issue(g, ctx, provider.prepare(g, ctx)), 'PROVIDER_REJECTED');
    expect(err.details).toMatchObject({ status: 400, vaultError: 'policy not allowed' });
  });

  it('when Vault is unreachable: PROVIDER_UNAVAILABLE naming the network error only', async () => {
    const { provider } = brokerProvider({ attempts: 2 });
    await fake.close();
    const err = await expectCode(provider.ready!(), 'PROVIDER_UNAVAILABLE');
    expect(err.message).toBe('Vault look up own token failed: network error (ECONNREFUSED)');
    fake = await startFakeVault();
  });
});

describe('broker login', () => {
  function providerWith(auth: Record<string, unknown>, env: Record<string, string> = {}) {
    const config = vaultConfigSchema.parse({ type: 'vault', address: fake.url, auth, retry: { attempts: 1, baseDelayMs: 0 } });
    return createVaultProvider('vault-main', config, { logger: capture(), now: () => new Date(fake.now()), env, sleep: noSleep });
  }
  function secretFile(name: string, value: string): string {
    const f = join(tmp, name);
    writeFileSync(f, `${value}\n`);
    secrets.add(value);
    return f;
  }

  it('logs in with AppRole (file or env), re-logging in before the token expires', async () => {
    const secretId = `sid-${randomBytes(12).toString('hex')}`;
    fake.addAuthRole({ method: 'approle', role: 'role-1234', secret: secretId, policies: ['broker'], ttlSeconds: 60 });
    const p = providerWith({ method: 'approle', roleId: 'role-1234', secretIdFile: secretFile('sid', secretId) });
    await p.ready!();
    await p.ready!();
    expect(fake.callCount('POST', 'auth/approle/login')).toBe(1);
    fake.advance(45); // past 2/3 of the 60 s login TTL
    await p.ready!();
    expect(fake.callCount('POST', 'auth/approle/login')).toBe(2);
    await providerWith({ method: 'approle', roleId: 'role-1234', secretIdEnv: 'VAULT_SECRET_ID' }, { VAULT_SECRET_ID: secretId }).ready!();
    for (const t of fake.tokens()) secrets.add(t.id);
  });

  it('refuses a wrong AppRole secret_id with PROVIDER_REJECTED, without echoing it', async () => {
    fake.addAuthRole({ method: 'approle', role: 'role-1234', secret: 'the-right-one', policies: ['broker'] });
    secrets.add('the-right-one');
    const p = providerWith({ method: 'approle', roleId: 'role-1234', secretIdFile: secretFile('bad', 'sid-WRONG-secret') });
    const err = await expectCode(p.ready!(), 'PROVIDER_REJECTED');
    expect(err.message).toBe('Vault login failed: HTTP 400 (invalid credentials)');
  });

  it('logs in with JWT and with Kubernetes service-account tokens', async () => {
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${randomBytes(24).toString('base64url')}.sig`;
    const saJwt = `eyJhbGciOiJSUzI1NiJ9.${randomBytes(24).toString('base64url')}.sa`;
    fake.addAuthRole({ method: 'jwt', role: 'stagegate', secret: jwt, policies: ['broker'] });
    fake.addAuthRole({ method: 'kubernetes', mount: 'k8s-prod', role: 'stagegate', secret: saJwt, policies: ['broker'] });
    await providerWith({ method: 'jwt', role: 'stagegate', jwtFile: secretFile('jwt', jwt) }).ready!();
    await providerWith({ method: 'kubernetes', role: 'stagegate', mount: 'k8s-prod', jwtFile: secretFile('sa', saJwt) }).ready!();
    expect(fake.callCount('POST', 'auth/jwt/login')).toBe(1);
    expect(fake.callCount('POST', 'auth/k8s-prod/login')).toBe(1);
    const err = await expectCode(providerWith({ method: 'kubernetes', role: 'stagegate', mount: 'k8s-prod', jwtFile: secretFile('sa2', 'not-the-token') }).ready!(), 'PROVIDER_REJECTED');
    expect(err.details).toMatchObject({ status: 403 });
    for (const t of fake.tokens()) secrets.add(t.id);
  });

  it('re-reads a rotated token file when Vault refuses the old token', async () => {
    const first = fake.createToken({ policies: ['broker'] });
    const file = secretFile('token', first.token);
    const p = providerWith({ method: 'token', tokenFile: file });
    await p.ready!();
    const second = fake.createToken({ policies: ['broker'] });
    secrets.add(second.token);
    writeFileSync(file, second.token);
    await stageClient(fake.rootToken).write('auth/token/revoke-accessor', { accessor: first.accessor });
    await p.ready!();
  });

  it('reports a missing credential by its name only', async () => {
    const err = await expectCode(providerWith({ method: 'token', tokenEnv: 'STAGEGATE_TEST_VAULT_TOKEN' }).ready!(), 'PROVIDER_UNAVAILABLE');
    expect(err.message).toBe('environment variable STAGEGATE_TEST_VAULT_TOKEN is not set');
    const err2 = await expectCode(providerWith({ method: 'jwt', role: 'r', jwtFile: join(tmp, 'absent') }).ready!(), 'PROVIDER_UNAVAILABLE');
    expect(err2.message).toBe('cannot read the Vault credential file (ENOENT)');
  });
});

describe('handles', () => {
  it('rejects a foreign intent as a caller bug', async () => {
    const { provider } = brokerProvider();
    await expect(provider.revoke({ foo: 'bar' } as Handle, undefined)).rejects.toBeInstanceOf(TypeError);
  });
});
