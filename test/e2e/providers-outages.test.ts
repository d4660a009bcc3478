/**
 * Cloud outages through a real broker. At issue: the open fails with 503
 * PROVIDER_UNAVAILABLE naming the failed grant, and whatever the healthy providers
 * already minted for that stage is revoked (all or nothing). At revoke: the close answers
 * with the grant `pending` and its last error code, the stage view shows it pending, the
 * audit chain records `credential.revoke-failed`, and once the outage ends the reaper
 * revokes it (grant `revoked`, stage `closed`) — proven at the fake with the real SDKs.
 */
import { createHash, randomUUID } from 'node:crypto';
import { call } from '../harness/broker';
import {
  AWS_ROLE,
  DENY_POLICY,
  startProviderWorld,
  startWorldBroker,
  type ProviderWorld,
  type WorldBroker,
} from './provider-harness/provider-world';
import { collectBrokerTraces, expectNoSecretTraces, secretsOfAnswer } from './provider-harness/scan-broker-traces';
import { tryAwsCredential, tryVaultToken } from './provider-harness/use-stage-credentials';

jest.setTimeout(20_000);

const ADMIN_TOKEN = `admin-${randomUUID()}`;
let world: ProviderWorld;
let wb: WorldBroker;
const errorBodies: string[] = [];
beforeAll(async () => {
  world = await startProviderWorld();
  wb = await startWorldBroker(world, { configure: (c) => void (c.admin = { tokenSha256: [createHash('sha256').update(ADMIN_TOKEN).digest('hex')] }) });
});
afterAll(async () => {
  await wb?.close();
  await world?.close();
});
afterEach(() => {
  world.aws.setOutage(false);
  world.vault.setOutage(null);
  world.gcp.setOutage(false);
});

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The id of the newest stage that failed to open (the failed open's answer has none: it comes from the audit chain). */
async function lastFailedStageId(): Promise<string> {
  const events = await wb.broker.store.readAudit(0, 1e6);
  return events.filter((e) => e.type === 'stage.failed').at(-1)!.stageId!;
}

const adminView = async (stageId: string) => (await call(wb.url, 'GET', `/v1/stages/${stageId}`, { token: ADMIN_TOKEN })).body;

describe('outage at issue: the open fails and what was already issued is revoked', () => {
  const cases: Array<{ down: string; grants: string[]; start: () => void }> = [
    { down: 'aws', grants: ['aws'], start: () => world.aws.setOutage({ services: ['sts'], actions: ['AssumeRole'] }) },
    { down: 'vault', grants: ['vault-token', 'db'], start: () => world.vault.setOutage({ status: 503 }) },
    { down: 'gcp', grants: ['gcp'], start: () => world.gcp.setOutage(true) },
  ];

  it.each(cases)('when $down is down, the all-three stage answers 503 and the healthy grants are revoked', async ({ down, grants, start }) => {
    const leasesBefore = new Set(world.vault.leases().map((l) => l.leaseId));
    const sessionsBefore = world.aws.sessions().length;
    const gcpBefore = world.gcp.issued.length;
    start();
    const res = await wb.open('all-three');
    errorBodies.push(res.text);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('PROVIDER_UNAVAILABLE');
    expect(res.body.error.details).toMatchObject({ provider: down });
    expect(grants).toContain(res.body.error.details.grant);
    const stageId = await lastFailedStageId();

    // The healthy providers did mint for this stage …
    const newSessions = world.aws.sessions().slice(sessionsBefore).filter((s) => s.sourceIdentity === `sg-${stageId}`);
    const stageTokens = () => world.vault.tokens().filter((t) => t.meta.stagegate_stage_id === stageId);
    const newLeases = world.vault.leases().filter((l) => !leasesBefore.has(l.leaseId));
    expect(newSessions).toHaveLength(down === 'aws' ? 0 : 1);
    expect(newLeases).toHaveLength(down === 'vault' ? 0 : 1);
    expect(world.gcp.issued.length - gcpBefore).toBe(down === 'gcp' ? 0 : 1);

    // … and it is all taken back before the 503 is answered: AWS denied by the stage's
    // source identity, Vault revoked natively, GCP left to expire unrefreshed.
    const atAnswer = await adminView(stageId);
    for (const g of atAnswer.grants) if (!grants.includes(g.name)) expect(g).toMatchObject({ name: g.name, state: 'revoked' });
    // The failed grants' intents are revoked too (a half-done mint may have left something):
    // at once where the provider is reachable, by the reaper once the outage ends.
    world.aws.setOutage(false);
    world.vault.setOutage(null);
    world.gcp.setOutage(false);
    const view = await waitFor('every grant revoked', async () => {
      const v = await adminView(stageId);
      return v.grants.every((g: any) => g.state === 'revoked') ? v : undefined;
    });
    expect(view.state).toBe('failed');
    expect(view.closeReason).toBe('issue-failed');
    const methods = Object.fromEntries(view.grants.map((g: any) => [g.name, g.method]));
    expect(methods).toEqual({ aws: 'deny-policy', 'vault-token': 'native', db: 'native', gcp: 'expiry' });
    expect(world.aws.rolePolicies(AWS_ROLE)[DENY_POLICY]).toContain(`sg-${stageId}`);
    expect(stageTokens()).toEqual([]);
    for (const l of newLeases) expect(world.vault.isLeaseValid(l.leaseId)).toBe(false);
    for (const l of newLeases) expect(world.vault.isDatabaseUserValid(l.username!)).toBe(false);
    if (down !== 'gcp') {
      const token = world.gcp.issued.at(-1)!;
      expect(view.grants.find((g: any) => g.name === 'gcp').effectiveAt).toBe(token.expiresAt.toISOString());
    }
    const types = (await wb.broker.store.readAudit(0, 1e6)).filter((e) => e.stageId === stageId).map((e) => e.type);
    expect(types).toContain('credential.issue-failed');
    expect(types.filter((t) => t === 'credential.revoked')).toHaveLength(4);
  });
});

describe('outage at revoke: pending, visible, audited, and finished by the reaper when the outage ends', () => {
  it('aws: IAM down at close leaves the deny pending (the credentials still work meanwhile), then the reaper writes it', async () => {
    const opened = await wb.open('aws-deploy');
    const v = opened.body.credentials[0].values;
    world.aws.setOutage({ services: ['iam'] });
    const closed = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken, body: { exitCode: 0 } });
    errorBodies.push(closed.text);
    expect(closed.status).toBe(200);
    expect(closed.body.state).toBe('closing');
    expect(closed.body.revoked).toEqual([expect.objectContaining({ name: 'aws', method: 'deny-policy', state: 'pending', lastErrorCode: 'PROVIDER_UNAVAILABLE' })]);
    const view = await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    expect(view.body.state).toBe('closing');
    expect(view.body.grants[0]).toMatchObject({ state: 'revoking', lastErrorCode: 'PROVIDER_UNAVAILABLE' });
    // Honest: until the deny is written, the session works (STS itself is up).
    expect(await tryAwsCredential(world.aws.url, v)).toBe('ok');
    // The reaper keeps retrying with backoff while IAM is down.
    await waitFor('a retry', async () => ((await adminView(opened.body.stageId)).grants[0].attempts >= 2 ? true : undefined));
    const audit = (await wb.broker.store.readAudit(0, 1e6)).filter((e) => e.stageId === opened.body.stageId);
    const failed = audit.filter((e) => e.type === 'credential.revoke-failed');
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(failed[0]!.data).toMatchObject({ grant: 'aws', provider: 'aws', code: 'PROVIDER_UNAVAILABLE' });

    world.aws.setOutage(false);
    const done = await waitFor('the reaper to revoke', async () => {
      const b = (await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken })).body;
      return b.state === 'closed' ? b : undefined;
    });
    // The stage view keeps the failed attempts as history; the grant is revoked.
    expect(done.grants[0]).toMatchObject({ state: 'revoked', method: 'deny-policy' });
    expect(done.grants[0].attempts).toBeGreaterThanOrEqual(2);
    expect(await tryAwsCredential(world.aws.url, v)).toBe('AccessDenied');
    const again = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    expect(again.body.revoked[0]).toMatchObject({ state: 'revoked', method: 'deny-policy' });
    expect(again.body.revoked[0].lastErrorCode).toBeUndefined();
    expectNoSecretTraces(await collectBrokerTraces(wb, [...errorBodies, view.text]), [...world.brokerSecrets, ...secretsOfAnswer(opened.body)]);
  });

  it('vault: Vault down at close leaves token and lease pending (the static KV value is reported none), then the reaper revokes them', async () => {
    const opened = await wb.open('vault-deploy');
    const token = opened.body.credentials.find((c: any) => c.name === 'vault-token').values.token;
    const { username } = opened.body.credentials.find((c: any) => c.name === 'db').values;
    world.vault.setOutage({ status: 503 });
    const closed = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    errorBodies.push(closed.text);
    expect(closed.status).toBe(200);
    expect(closed.body.state).toBe('closing');
    expect(closed.body.revoked.map((r: any) => [r.name, r.method, r.state, r.lastErrorCode])).toEqual([
      ['vault-token', 'native', 'pending', 'PROVIDER_UNAVAILABLE'],
      ['db', 'native', 'pending', 'PROVIDER_UNAVAILABLE'],
      ['npm', 'none', 'revoked', undefined],
    ]);
    const view = await adminView(opened.body.stageId);
    expect(view.grants.map((g: any) => g.state)).toEqual(['revoking', 'revoking', 'revoked']);
    const types = (await wb.broker.store.readAudit(0, 1e6)).filter((e) => e.stageId === opened.body.stageId).map((e) => e.type);
    expect(types.filter((t) => t === 'credential.revoke-failed').length).toBeGreaterThanOrEqual(2);

    world.vault.setOutage(null);
    const done = await waitFor('the reaper to revoke', async () => {
      const b = await adminView(opened.body.stageId);
      return b.state === 'closed' ? b : undefined;
    });
    expect(done.grants.map((g: any) => [g.name, g.state, g.method])).toEqual([
      ['vault-token', 'revoked', 'native'],
      ['db', 'revoked', 'native'],
      ['npm', 'revoked', 'none'],
    ]);
    expect(await tryVaultToken(world.vault.url, token)).toBe(403);
    expect(world.vault.isDatabaseUserValid(username)).toBe(false);
    expectNoSecretTraces(await collectBrokerTraces(wb, errorBodies), [...world.brokerSecrets, ...secretsOfAnswer(opened.body)]);
  });

  it('gcp: an outage at close changes nothing, since expiry needs no call to Google', async () => {
    const opened = await wb.open('gcp-deploy');
    world.gcp.setOutage(true);
    const closed = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    expect(closed.body).toMatchObject({ state: 'closed', revoked: [expect.objectContaining({ method: 'expiry', state: 'revoked', effectiveAt: opened.body.credentials[0].expiresAt })] });
  });
});

describe('readiness', () => {
  it('/readyz checks every provider against its backend and names the one that is down', async () => {
    const ok = await call(wb.url, 'GET', '/readyz');
    expect(ok.status).toBe(200);
    expect(ok.body.checks).toEqual({ store: 'ok', 'provider:aws': 'ok', 'provider:vault': 'ok', 'provider:gcp': 'ok' });
    world.vault.setOutage({ status: 503 });
    const down = await call(wb.url, 'GET', '/readyz');
    expect(down.status).toBe(503);
    expect(down.body.checks).toEqual({ store: 'ok', 'provider:aws': 'ok', 'provider:vault': 'PROVIDER_UNAVAILABLE', 'provider:gcp': 'ok' });
    world.vault.setOutage(null);
    world.aws.setOutage({ services: ['sts'] });
    expect((await call(wb.url, 'GET', '/readyz')).body.checks['provider:aws']).toBe('PROVIDER_UNAVAILABLE');
  });
});
