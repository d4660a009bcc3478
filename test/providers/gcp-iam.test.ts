/**
 * The `gcp-iam` provider, end to end through the real `IAMCredentialsClient` (REST
 * mode) against the stateful IAM Credentials fake. The provider and the fake share the
 * fake's clock, so expiry maths can be checked to the second.
 */
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { OAuth2Client } from 'google-auth-library';
import pino from 'pino';
import { isStagegateError, StagegateError } from '../../sdk/errors';
import type { GrantSpec, Handle, Provider, StageContext } from '../../providers/provider';
import {
  createGcpIamProvider,
  gcpIamConfigSchema,
  gcpIamGrantSchema,
  gcpIamProviderFactory,
  type GcpIamConfigInput,
  type GcpIamGrant,
  type GcpIamGrantInput,
} from '../../providers/gcp-iam';
import { startFakeGcpIam, type FakeGcpIam } from '../fakes/gcp-iam';

const BROKER = 'serviceAccount:broker@ops-project.iam.gserviceaccount.com';
const BROKER_TOKEN = 'ya29.broker-own-token-SECRET-4f1c2a';
const DEPLOYER = 'deployer@app-project.iam.gserviceaccount.com';
const CLOUD = 'https://www.googleapis.com/auth/cloud-platform';
const T0 = Date.parse('2030-01-01T00:00:00Z');
const MIN = 60_000;

let fake: FakeGcpIam;
let logLines: string[];
const providers: Provider<GcpIamGrant>[] = [];

function makeProvider(config: Partial<GcpIamConfigInput> = {}, bearer: string | null = BROKER_TOKEN): Provider<GcpIamGrant> {
  const authClient = new OAuth2Client({ transporterOptions: { fetchImplementation: fetch } });
  if (bearer) authClient.setCredentials({ access_token: bearer });
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    }),
  );
  const provider = createGcpIamProvider(
    'gcp',
    gcpIamConfigSchema.parse({ type: 'gcp-iam', ...config }),
    { logger, now: () => fake.now() },
    { authClient, endpoint: { host: fake.host, port: fake.port, protocol: 'http' }, retryBaseDelayMs: 5 },
  );
  providers.push(provider);
  return provider;
}

function grant(params: GcpIamGrantInput = { serviceAccount: DEPLOYER }): GrantSpec<GcpIamGrant> {
  return { name: 'deploy-gcp', provider: 'gcp', params: gcpIamGrantSchema.parse(params) };
}

function stage(maxFromNowMs = 60 * MIN): StageContext {
  const now = fake.now().getTime();
  return {
    stageId: 'stg-1',
    build: 'acme/web/123/1',
    stage: 'deploy',
    rule: 'deploy-main',
    issuer: 'github',
    claims: { repository: 'acme/web' },
    expiresAt: new Date(now + Math.min(5 * MIN, maxFromNowMs)),
    maxExpiresAt: new Date(now + maxFromNowMs),
  };
}

async function rejection(p: Promise<unknown>): Promise<StagegateError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof StagegateError) return e;
    throw e;
  }
  throw new Error('expected a StagegateError');
}

/** Every secret this test run has seen: the broker's own token and every token the fake minted. */
function secrets(): string[] {
  return [BROKER_TOKEN, ...fake.issued.map((t) => t.accessToken)];
}

function expectNoSecretIn(...things: unknown[]): void {
  const text = things.map((t) => (typeof t === 'string' ? t : JSON.stringify(t, Object.getOwnPropertyNames(t ?? {})))).join('\n');
  for (const s of secrets()) {
    expect(text).not.toContain(s);
    expect(text).not.toContain(s.slice(0, 24)); // not even a prefix
  }
}

/** Everything of an error that could reach a caller or a log, including a deep look at any cause. */
function errorSurface(e: StagegateError): unknown[] {
  return [e.message, e.stack, e.details, e.toJSON(), JSON.stringify(e), inspect(e, { depth: 10, showHidden: true })];
}

beforeEach(async () => {
  logLines = [];
  fake = await startFakeGcpIam({
    serviceAccounts: [DEPLOYER],
    callers: { [BROKER_TOKEN]: BROKER },
    tokenCreators: { [DEPLOYER]: [BROKER] },
    startTimeMs: T0,
  });
});

afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close?.()));
  await fake.close();
});

describe('gcp-iam provider: issue, refresh, revoke', () => {
  it('issues a live token for the service account, with meta, expiry and a refresh time', async () => {
    const p = makeProvider({ projectId: 'app-project' });
    const ctx = stage();
    const intent = p.prepare(grant(), ctx);
    const cred = await p.issue(grant(), ctx, intent);

    expect(cred.kind).toBe('gcp-access-token');
    expect(cred.revocation).toBe('expiry');
    expect(cred.meta).toEqual({ serviceAccountEmail: DEPLOYER, projectId: 'app-project' });
    expect(fake.tokenInfo(cred.values.accessToken)).toMatchObject({ state: 'valid', email: DEPLOYER, scopes: [CLOUD] });
    // Default lifetime 10 min, refresh 6 min before expiry.
    expect(cred.expiresAt.getTime()).toBe(T0 + 10 * MIN);
    expect(cred.refreshAt?.getTime()).toBe(T0 + 4 * MIN);
    expect(JSON.parse(fake.requests[0].body)).toEqual({ scope: [CLOUD], lifetime: '600s' });
    expect(intent).toMatchObject({ serviceAccountEmail: DEPLOYER, notAfter: new Date(T0 + 10 * MIN).toISOString() });
    expect(cred.handle).toMatchObject({ serviceAccountEmail: DEPLOYER, expiresAt: new Date(T0 + 10 * MIN).toISOString(), mints: 1 });
    expectNoSecretIn(intent, cred.handle, cred.meta, logLines.join(''));
  });

  it('refreshes with a new token that expires later, and revoke reports when the last one dies', async () => {
    const p = makeProvider();
    const ctx = stage();
    const intent = p.prepare(grant(), ctx);
    const first = await p.issue(grant(), ctx, intent);

    fake.advanceClock(4 * MIN); // the broker refreshes at refreshAt
    const second = await p.refresh!(grant(), ctx, first.handle);
    expect(second.values.accessToken).not.toBe(first.values.accessToken);
    expect(second.expiresAt.getTime()).toBe(T0 + 14 * MIN);
    expect(second.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime());
    expect(second.handle).toMatchObject({ mints: 2, expiresAt: new Date(T0 + 14 * MIN).toISOString() });
    expect(fake.tokenInfo(second.values.accessToken).state).toBe('valid');

    // The stage exits one minute later: nothing is called, the expiry is reported.
    fake.advanceClock(1 * MIN);
    const callsBefore = fake.calls.generateAccessToken;
    const result = await p.revoke(intent, second.handle);
    expect(result).toEqual({ method: 'expiry', effectiveAt: second.expiresAt });
    expect(await p.revoke(intent, second.handle)).toEqual(result); // idempotent
    expect(fake.calls.generateAccessToken).toBe(callsBefore);

    // Honest about what expiry means: the token still works until that exact time…
    fake.setClock(result.effectiveAt.getTime() - 1000);
    expect(fake.tokenInfo(second.values.accessToken).state).toBe('valid');
    // …and from then on every token of the credential is dead.
    fake.setClock(result.effectiveAt);
    expect(fake.tokenInfo(first.values.accessToken).state).toBe('expired');
    expect(fake.tokenInfo(second.values.accessToken).state).toBe('expired');
    expectNoSecretIn(intent, first.handle, second.handle, result, logLines.join(''));
  });

  it('clamps the lifetime to the time left until the stage max expiry, and then needs no refresh', async () => {
    const p = makeProvider({ lifetimeSeconds: 1800 });
    const ctx = stage(90_500); // 90.5 s left: whole seconds, rounded down
    const intent = p.prepare(grant(), ctx);
    const cred = await p.issue(grant(), ctx, intent);
    expect(JSON.parse(fake.requests[0].body).lifetime).toBe('90s');
    expect(cred.expiresAt.getTime()).toBe(T0 + 90_000);
    expect(cred.expiresAt.getTime()).toBeLessThanOrEqual(ctx.maxExpiresAt.getTime());
    expect(cred.refreshAt).toBeUndefined();

    // A refresh late in the stage is clamped the same way.
    const longer = stage(30 * MIN);
    fake.advanceClock(25 * MIN);
    const again = await p.refresh!(grant(), longer, cred.handle);
    expect(JSON.parse(fake.requests[1].body).lifetime).toBe('300s');
    expect(again.expiresAt.getTime()).toBe(longer.maxExpiresAt.getTime());
  });

  it('uses the grant lifetime, scopes and delegates, and refreshes a short token no earlier than a quarter into its life', async () => {
    const RELAY = 'relay@app-project.iam.gserviceaccount.com';
    fake.addServiceAccount(RELAY);
    fake.grantTokenCreator(RELAY, BROKER);
    fake.grantTokenCreator(DEPLOYER, `serviceAccount:${RELAY}`);
    const p = makeProvider({ refreshBeforeSeconds: 600 });
    const g = grant({ serviceAccount: DEPLOYER, lifetimeSeconds: 120, scopes: ['https://www.googleapis.com/auth/devstorage.read_write'], delegates: [RELAY] });
    const ctx = stage();
    const cred = await p.issue(g, ctx, p.prepare(g, ctx));
    expect(JSON.parse(fake.requests[0].body)).toEqual({
      scope: ['https://www.googleapis.com/auth/devstorage.read_write'],
      lifetime: '120s',
      delegates: [`projects/-/serviceAccounts/${RELAY}`],
    });
    expect(cred.meta).toEqual({ serviceAccountEmail: DEPLOYER, projectId: 'app-project' }); // project from the email
    expect(cred.refreshAt?.getTime()).toBe(T0 + 30_000);
  });

  it('after a crash between mint and record, revoke(intent) reports the backstop the token really dies at', async () => {
    const p = makeProvider();
    const ctx = stage();
    const intent = p.prepare(grant(), ctx);
    fake.advanceClock(30_000); // the broker was slow between write-ahead and mint
    const lost = await p.issue(grant(), ctx, intent); // minted, then the broker "crashed": handle never stored
    expect(JSON.parse(fake.requests[0].body).lifetime).toBe('570s'); // shortened to keep within the backstop

    const result = await p.revoke(intent, undefined);
    expect(result.method).toBe('expiry');
    expect(result.effectiveAt.getTime()).toBe(T0 + 10 * MIN);
    expect(fake.tokenInfo(lost.values.accessToken).expiresAt!.getTime()).toBeLessThanOrEqual(result.effectiveAt.getTime());
    fake.setClock(result.effectiveAt);
    expect(fake.tokenInfo(lost.values.accessToken).state).toBe('expired');
  });

  it('refuses to mint when the stage time is used up, without calling Google', async () => {
    const p = makeProvider();
    const ctx = stage(10 * MIN);
    const intent = p.prepare(grant(), ctx);
    fake.advanceClock(10 * MIN);
    const e = await rejection(p.issue(grant(), ctx, intent));
    expect(e.code).toBe('PROVIDER_REJECTED');
    expect(e.details.reason).toBe('stage-max-expiry-reached');
    expect(fake.calls.generateAccessToken).toBe(0);
  });
});

describe('gcp-iam provider: failures are coded and carry no secret', () => {
  it('when IAM Credentials is down, retries then fails with PROVIDER_UNAVAILABLE', async () => {
    fake.setOutage(true);
    const p = makeProvider({ maxAttempts: 3 });
    const ctx = stage();
    const e = await rejection(p.issue(grant(), ctx, p.prepare(grant(), ctx)));
    expect(e.code).toBe('PROVIDER_UNAVAILABLE');
    expect(e.message).toBe('GCP IAM Credentials generateAccessToken failed: HTTP 503 UNAVAILABLE');
    expect(e.details).toMatchObject({ httpStatus: 503, googleStatus: 'UNAVAILABLE', attempts: 3 });
    expect(e.cause).toBeUndefined(); // the GaxiosError holds Google's text and the whole request config
    expect(fake.calls.generateAccessToken).toBe(3);
    expect(logLines.filter((l) => l.includes('retrying'))).toHaveLength(2);
    expectNoSecretIn(...errorSurface(e), logLines.join(''));
  });

  it('when one attempt fails transiently, the retry succeeds', async () => {
    fake.failNext(1, 429);
    const p = makeProvider();
    const ctx = stage();
    const cred = await p.issue(grant(), ctx, p.prepare(grant(), ctx));
    expect(fake.tokenInfo(cred.values.accessToken).state).toBe('valid');
    expect(fake.calls.byStatus).toEqual({ 429: 1, 200: 1 });
    expectNoSecretIn(cred.handle, logLines.join(''));
  });

  it('when the broker is no token creator on the account (403), fails at once with PROVIDER_REJECTED', async () => {
    fake.revokeTokenCreator(DEPLOYER, BROKER);
    const p = makeProvider();
    const ctx = stage();
    const e = await rejection(p.issue(grant(), ctx, p.prepare(grant(), ctx)));
    expect(e.code).toBe('PROVIDER_REJECTED');
    expect(e.details).toMatchObject({ httpStatus: 403, googleStatus: 'PERMISSION_DENIED', attempts: 1 });
    expect(e.message).not.toContain('getAccessToken'); // Google's text is not passed on
    expect(e.cause).toBeUndefined();
    expect(fake.calls.generateAccessToken).toBe(1);
    expectNoSecretIn(...errorSurface(e), logLines.join(''));
  });

  it("when the broker's own token is not accepted (401), fails with PROVIDER_REJECTED", async () => {
    const p = makeProvider({}, 'ya29.stale-broker-token-SECRET');
    const ctx = stage();
    const e = await rejection(p.issue(grant(), ctx, p.prepare(grant(), ctx)));
    expect(e.code).toBe('PROVIDER_REJECTED');
    expect(e.details.httpStatus).toBe(401);
    for (const surface of errorSurface(e)) expect(JSON.stringify(surface)).not.toContain('stale-broker-token');
    expect(logLines.join('')).not.toContain('stale-broker-token');
  });

  it('when the account is disabled, fails with PROVIDER_REJECTED (FAILED_PRECONDITION)', async () => {
    fake.disableServiceAccount(DEPLOYER);
    const p = makeProvider();
    const ctx = stage();
    const e = await rejection(p.issue(grant(), ctx, p.prepare(grant(), ctx)));
    expect(e.code).toBe('PROVIDER_REJECTED');
    expect(e.details.googleStatus).toBe('FAILED_PRECONDITION');
  });

  it('when IAM Credentials never answers, the per-attempt timeout gives PROVIDER_UNAVAILABLE', async () => {
    fake.setHang(true);
    const p = makeProvider({ requestTimeoutMs: 200, maxAttempts: 2 });
    const ctx = stage();
    const started = Date.now();
    const e = await rejection(p.issue(grant(), ctx, p.prepare(grant(), ctx)));
    expect(e.code).toBe('PROVIDER_UNAVAILABLE');
    expect(e.details).toMatchObject({ reason: 'timeout', attempts: 2 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(fake.calls.generateAccessToken).toBe(2);
  });

  it('when nothing listens, fails with PROVIDER_UNAVAILABLE (network)', async () => {
    const p = makeProvider({ maxAttempts: 1 });
    await fake.close();
    const ctx = stage();
    const e = await rejection(p.issue(grant(), ctx, p.prepare(grant(), ctx)));
    expect(e.code).toBe('PROVIDER_UNAVAILABLE');
    expect(e.details.reason).toBe('network');
    fake = await startFakeGcpIam({}); // for afterEach
  });

  it('revoke with unreadable handles is a coded error, not a guess', async () => {
    const p = makeProvider();
    const e = await rejection(p.revoke({ v: 1 } as Handle, undefined));
    expect(e.code).toBe('PROVIDER_REJECTED');
    expect(e.details.reason).toBe('handle-invalid');
  });
});

describe('gcp-iam provider: readiness, config and factory', () => {
  it('is ready when the broker has credentials, and PROVIDER_UNAVAILABLE when it has none', async () => {
    await expect(makeProvider().ready!()).resolves.toBeUndefined();
    const e = await rejection(makeProvider({}, null).ready!());
    expect(isStagegateError(e, 'PROVIDER_UNAVAILABLE')).toBe(true);
    expect(fake.calls.generateAccessToken).toBe(0); // cheap: no token is minted
  });

  it('validates config and grants, naming the bad field', () => {
    const http = gcpIamConfigSchema.safeParse({ type: 'gcp-iam', endpoint: { host: 'iam.example.com', port: 80, protocol: 'http' } });
    expect(http.success).toBe(false);
    expect(http.error?.issues[0].path).toEqual(['endpoint', 'protocol']);
    expect(gcpIamConfigSchema.safeParse({ type: 'gcp-iam', endpoint: { host: '127.0.0.1', port: 8080, protocol: 'http' } }).success).toBe(true);
    expect(gcpIamConfigSchema.parse({ type: 'gcp-iam' })).toMatchObject({ lifetimeSeconds: 600, refreshBeforeSeconds: 360, maxAttempts: 3 });
    expect(gcpIamConfigSchema.safeParse({ type: 'gcp-iam', lifetimeSeconds: 7200 }).error?.issues[0].path).toEqual(['lifetimeSeconds']);
    expect(gcpIamConfigSchema.safeParse({ type: 'gcp-iam', keyFile: '/etc/key.json' }).success).toBe(false); // no key files

    expect(gcpIamGrantSchema.parse({ serviceAccount: DEPLOYER })).toEqual({ serviceAccount: DEPLOYER, scopes: [CLOUD], delegates: [] });
    expect(gcpIamGrantSchema.safeParse({ serviceAccount: 'not-an-email' }).error?.issues[0].path).toEqual(['serviceAccount']);
    expect(gcpIamGrantSchema.safeParse({ serviceAccount: DEPLOYER, lifetimeSeconds: 3601 }).error?.issues[0].path).toEqual(['lifetimeSeconds']);
    expect(gcpIamGrantSchema.safeParse({ serviceAccount: DEPLOYER, scopes: [] }).error?.issues[0].path).toEqual(['scopes']);
  });

  it('the factory declares its type and kind', async () => {
    const logger = pino({ level: 'silent' });
    const p = gcpIamProviderFactory.create('gcp', gcpIamConfigSchema.parse({ type: 'gcp-iam' }), { logger, now: () => new Date() });
    expect(gcpIamProviderFactory.type).toBe('gcp-iam');
    expect(p.type).toBe('gcp-iam');
    expect(p.kinds).toEqual(['gcp-access-token']);
    await p.close?.();
  });
});
