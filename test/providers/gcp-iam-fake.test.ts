/**
 * The IAM Credentials fake enforces what Google enforces, driven by the real
 * `@google-cloud/iam-credentials` client (REST mode) and by raw HTTP — so a provider
 * test that passes against it could also fail.
 */
import { IAMCredentialsClient } from '@google-cloud/iam-credentials';
import { OAuth2Client } from 'google-auth-library';
import { startFakeGcpIam, type FakeGcpIam } from '../fakes/gcp-iam';

const BROKER = 'serviceAccount:broker@ops-project.iam.gserviceaccount.com';
const BROKER_TOKEN = 'ya29.broker-own-token-for-tests';
const ADMIN = 'serviceAccount:admin@ops-project.iam.gserviceaccount.com';
const ADMIN_TOKEN = 'ya29.admin-token-project-wide';
const DEPLOYER = 'deployer@app-project.iam.gserviceaccount.com';
const RELAY = 'relay@app-project.iam.gserviceaccount.com';
const CLOUD = 'https://www.googleapis.com/auth/cloud-platform';
const T0 = Date.parse('2030-01-01T00:00:00Z');

let fake: FakeGcpIam;
const clients: IAMCredentialsClient[] = [];

function clientFor(bearer: string | undefined): IAMCredentialsClient {
  const authClient = new OAuth2Client({ transporterOptions: { fetchImplementation: fetch } });
  if (bearer) authClient.setCredentials({ access_token: bearer });
  const c = new IAMCredentialsClient({ fallback: true, apiEndpoint: fake.host, port: fake.port, protocol: 'http', authClient });
  clients.push(c);
  return c;
}

async function generate(
  bearer: string,
  req: { name?: string; scope?: string[]; lifetime?: { seconds: number }; delegates?: string[] },
) {
  const [res] = await clientFor(bearer).generateAccessToken(
    { name: `projects/-/serviceAccounts/${DEPLOYER}`, scope: [CLOUD], lifetime: { seconds: 300 }, ...req },
    { maxRetries: 0 },
  );
  return res;
}

/** The HTTP status and Google status of a rejected call. */
async function failure(p: Promise<unknown>): Promise<{ status: number; googleStatus: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { status?: number; message: string };
    return { status: err.status ?? -1, googleStatus: (JSON.parse(err.message) as { error: { status: string } }).error.status };
  }
  throw new Error('expected the call to fail');
}

beforeEach(async () => {
  fake = await startFakeGcpIam({
    serviceAccounts: [DEPLOYER, RELAY],
    callers: { [BROKER_TOKEN]: BROKER, [ADMIN_TOKEN]: ADMIN },
    tokenCreators: { [DEPLOYER]: [BROKER], '*': [ADMIN] },
    startTimeMs: T0,
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await fake.close();
});

describe('fake IAM Credentials: the wire the real client speaks', () => {
  it('decodes the percent-encoded @ of the account and mints a token with the asked lifetime', async () => {
    const res = await generate(BROKER_TOKEN, { lifetime: { seconds: 300 } });
    const req = fake.requests[0];
    expect(req.method).toBe('POST');
    expect(req.url).toContain('/v1/projects/-/serviceAccounts/deployer%40app-project.iam.gserviceaccount.com:generateAccessToken');
    expect(req.account).toBe(DEPLOYER);
    expect(req.headers.authorization).toBe(`Bearer ${BROKER_TOKEN}`);
    expect(JSON.parse(req.body)).toEqual({ scope: [CLOUD], lifetime: '300s' }); // empty delegates omitted
    expect(typeof res.accessToken).toBe('string');
    expect(Number(res.expireTime?.seconds) * 1000).toBe(T0 + 300_000);
    expect(fake.tokenInfo(res.accessToken as string)).toMatchObject({ state: 'valid', active: true, email: DEPLOYER, scopes: [CLOUD] });
    expect(fake.calls.generateAccessToken).toBe(1);
  });

  it('also accepts the @ unencoded (raw HTTP)', async () => {
    const r = await fetch(`${fake.url}/v1/projects/-/serviceAccounts/${DEPLOYER}:generateAccessToken`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BROKER_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: [CLOUD], lifetime: '60s' }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { accessToken: string; expireTime: string };
    expect(body.expireTime).toBe(new Date(T0 + 60_000).toISOString().replace('.000Z', 'Z'));
  });

  it('serves tokeninfo like Google: 200 for a live token, 400 invalid_token once expired', async () => {
    const res = await generate(BROKER_TOKEN, { lifetime: { seconds: 120 } });
    const ask = () => fetch(`${fake.url}/oauth2/v3/tokeninfo?access_token=${encodeURIComponent(res.accessToken as string)}`);
    const live = await ask();
    expect(live.status).toBe(200);
    expect(await live.json()).toMatchObject({ email: DEPLOYER, scope: CLOUD, expires_in: '120' });
    fake.advanceClock(120_000);
    expect(fake.tokenInfo(res.accessToken as string).state).toBe('expired');
    const dead = await ask();
    expect(dead.status).toBe(400);
    expect(await dead.json()).toEqual({ error: 'invalid_token', error_description: 'Invalid Value' });
    expect(fake.tokenInfo('ya29.never-issued').state).toBe('unknown');
  });
});

describe('fake IAM Credentials: what Google enforces', () => {
  it('answers 401 UNAUTHENTICATED without a bearer token (raw HTTP)', async () => {
    const r = await fetch(`${fake.url}/v1/projects/-/serviceAccounts/${encodeURIComponent(DEPLOYER)}:generateAccessToken`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ scope: [CLOUD] }),
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('Bearer');
    expect(((await r.json()) as { error: { status: string } }).error.status).toBe('UNAUTHENTICATED');
  });

  it('answers 401 to the real client holding an unknown token', async () => {
    expect(await failure(generate('ya29.someone-else', {}))).toEqual({ status: 401, googleStatus: 'UNAUTHENTICATED' });
    expect(fake.issued).toHaveLength(0);
  });

  it('rejects a lifetime over 3600 s with 400 INVALID_ARGUMENT', async () => {
    expect(await failure(generate(BROKER_TOKEN, { lifetime: { seconds: 3601 } }))).toEqual({ status: 400, googleStatus: 'INVALID_ARGUMENT' });
    await expect(generate(BROKER_TOKEN, { lifetime: { seconds: 3600 } })).resolves.toBeDefined();
  });

  it('accepts up to 43200 s only when configured (the org-policy exception)', async () => {
    const wide = await startFakeGcpIam({
      serviceAccounts: [DEPLOYER],
      callers: { [BROKER_TOKEN]: BROKER },
      tokenCreators: { [DEPLOYER]: [BROKER] },
      maxLifetimeSeconds: 43_200,
    });
    try {
      const r = await fetch(`${wide.url}/v1/projects/-/serviceAccounts/${encodeURIComponent(DEPLOYER)}:generateAccessToken`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BROKER_TOKEN}` },
        body: JSON.stringify({ scope: [CLOUD], lifetime: '43200s' }),
      });
      expect(r.status).toBe(200);
    } finally {
      await wide.close();
    }
  });

  it('rejects a malformed lifetime and an empty scope with 400', async () => {
    const post = (body: unknown) =>
      fetch(`${fake.url}/v1/projects/-/serviceAccounts/${encodeURIComponent(DEPLOYER)}:generateAccessToken`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BROKER_TOKEN}` },
        body: JSON.stringify(body),
      });
    expect((await post({ scope: [CLOUD], lifetime: 'ten minutes' })).status).toBe(400);
    expect((await post({ scope: [CLOUD], lifetime: '0s' })).status).toBe(400);
    expect((await post({ scope: [], lifetime: '60s' })).status).toBe(400);
    // The real client omits an empty array, so "no scope" is the shape it sends.
    expect(await failure(generate(BROKER_TOKEN, { scope: [] }))).toEqual({ status: 400, googleStatus: 'INVALID_ARGUMENT' });
    expect(fake.issued).toHaveLength(0);
  });

  it('rejects an account id that is neither an email nor a unique id with 400', async () => {
    expect(await failure(generate(BROKER_TOKEN, { name: 'projects/-/serviceAccounts/not-an-email' }))).toEqual({
      status: 400,
      googleStatus: 'INVALID_ARGUMENT',
    });
  });

  it('answers 403 PERMISSION_DENIED when the caller is no token creator on the target', async () => {
    fake.revokeTokenCreator(DEPLOYER, BROKER);
    expect(await failure(generate(BROKER_TOKEN, {}))).toEqual({ status: 403, googleStatus: 'PERMISSION_DENIED' });
    fake.grantTokenCreator(DEPLOYER, BROKER);
    await expect(generate(BROKER_TOKEN, {})).resolves.toBeDefined();
  });

  it('hides whether an unknown account exists (403) unless the caller has project-wide rights (404)', async () => {
    const ghost = 'projects/-/serviceAccounts/ghost@app-project.iam.gserviceaccount.com';
    expect(await failure(generate(BROKER_TOKEN, { name: ghost }))).toEqual({ status: 403, googleStatus: 'PERMISSION_DENIED' });
    expect(await failure(generate(ADMIN_TOKEN, { name: ghost }))).toEqual({ status: 404, googleStatus: 'NOT_FOUND' });
  });

  it('refuses a disabled account, kills its live tokens, and revives them when enabled again', async () => {
    const res = await generate(BROKER_TOKEN, {});
    fake.disableServiceAccount(DEPLOYER);
    expect(fake.tokenInfo(res.accessToken as string).state).toBe('disabled');
    expect(await failure(generate(BROKER_TOKEN, {}))).toEqual({ status: 400, googleStatus: 'FAILED_PRECONDITION' });
    fake.enableServiceAccount(DEPLOYER);
    expect(fake.tokenInfo(res.accessToken as string).state).toBe('valid');
  });

  it('checks the delegation chain hop by hop', async () => {
    const viaRelay = { delegates: [`projects/-/serviceAccounts/${RELAY}`] };
    expect(await failure(generate(BROKER_TOKEN, viaRelay))).toEqual({ status: 403, googleStatus: 'PERMISSION_DENIED' });
    fake.grantTokenCreator(RELAY, BROKER);
    expect(await failure(generate(BROKER_TOKEN, viaRelay))).toEqual({ status: 403, googleStatus: 'PERMISSION_DENIED' });
    fake.grantTokenCreator(DEPLOYER, `serviceAccount:${RELAY}`);
    fake.revokeTokenCreator(DEPLOYER, BROKER);
    await generate(BROKER_TOKEN, viaRelay);
    expect(JSON.parse(fake.requests.at(-1)!.body).delegates).toEqual([`projects/-/serviceAccounts/${RELAY}`]);
    expect(fake.issued.at(-1)).toMatchObject({ email: DEPLOYER, delegates: [RELAY], caller: BROKER });
  });

  it('answers 503 UNAVAILABLE in an outage and for the next N requests when told', async () => {
    fake.setOutage(true);
    expect(await failure(generate(BROKER_TOKEN, {}))).toEqual({ status: 503, googleStatus: 'UNAVAILABLE' });
    fake.setOutage(false);
    fake.failNext(1);
    expect(await failure(generate(BROKER_TOKEN, {}))).toEqual({ status: 503, googleStatus: 'UNAVAILABLE' });
    await expect(generate(BROKER_TOKEN, {})).resolves.toBeDefined();
    expect(fake.calls.byStatus).toEqual({ 503: 2, 200: 1 });
  });
});
