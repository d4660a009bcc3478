/**
 * The `gcp-iam` provider through a real broker over HTTP, on one test clock shared by
 * the broker, the provider and the IAM Credentials fake: the token the stage gets is
 * valid at Google (the fake's tokeninfo); a heartbeat after `refreshAt` brings a fresh
 * token; the close reports `expiry` with the exact `expireTime` Google gave the last
 * token; after the close nothing is refreshed any more, and once the clock passes that
 * time every token of the stage is dead.
 */
import { call } from '../harness/broker';
import { startGatedHttpProxy } from './provider-harness/gated-http-proxy';
import { GCP_DEPLOYER, startProviderWorld, startWorldBroker, type ProviderWorld, type WorldBroker } from './provider-harness/provider-world';
import { collectBrokerTraces, expectNoSecretTraces, secretsOfAnswer } from './provider-harness/scan-broker-traces';

jest.setTimeout(20_000);

const MIN = 60_000;
let world: ProviderWorld;
let wb: WorldBroker;
beforeAll(async () => {
  world = await startProviderWorld();
  wb = await startWorldBroker(world);
});
afterAll(async () => {
  await wb?.close();
  await world?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('gcp-iam through the broker', () => {
  it('serves a valid token, refreshes it on a heartbeat after refreshAt, reports expiry at the exact end on close, and stops refreshing', async () => {
    const opened = await wb.open('gcp-deploy');
    expect(opened.status).toBe(201);
    const secrets = [...world.brokerSecrets, ...secretsOfAnswer(opened.body)];
    const [cred] = opened.body.credentials;
    expect(cred).toMatchObject({
      name: 'gcp',
      provider: 'gcp',
      kind: 'gcp-access-token',
      revocation: 'expiry',
      meta: { serviceAccountEmail: GCP_DEPLOYER, projectId: 'app-project' },
    });
    const first: string = cred.values.accessToken;
    expect(world.gcp.tokenInfo(first)).toMatchObject({ state: 'valid', active: true, email: GCP_DEPLOYER });
    const minted = world.gcp.issued.at(-1)!;
    // 600 s asked for, in whole seconds rounded down from the write-ahead bound.
    expect(minted.lifetimeSeconds).toBeGreaterThanOrEqual(598);
    expect(minted.lifetimeSeconds).toBeLessThanOrEqual(600);
    expect(cred.expiresAt).toBe(minted.expiresAt.toISOString());
    // refreshAt = expiry - refreshBeforeSeconds (360 s).
    expect(Date.parse(cred.refreshAt)).toBe(minted.expiresAt.getTime() - 6 * MIN);

    // Before refreshAt a heartbeat mints nothing.
    const callsAtOpen = world.gcp.calls.generateAccessToken;
    const early = await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
    expect(early.status).toBe(200);
    expect(early.body.credentials).toEqual([]);
    expect(world.gcp.calls.generateAccessToken).toBe(callsAtOpen);

    // Five minutes on (past refreshAt at +4 min), the heartbeat answers with a fresh token.
    world.clock.advance(5 * MIN);
    const hb = await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
    expect(hb.status).toBe(200);
    expect(hb.body.credentials).toHaveLength(1);
    const refreshed = hb.body.credentials[0];
    secrets.push(...secretsOfAnswer(hb.body));
    const second: string = refreshed.values.accessToken;
    expect(second).not.toBe(first);
    expect(world.gcp.calls.generateAccessToken).toBe(callsAtOpen + 1);
    const last = world.gcp.issued.at(-1)!;
    expect(last.accessToken).toBe(second);
    expect(refreshed).toMatchObject({ name: 'gcp', kind: 'gcp-access-token', revocation: 'expiry', expiresAt: last.expiresAt.toISOString() });
    expect(Date.parse(refreshed.refreshAt)).toBe(last.expiresAt.getTime() - 6 * MIN);
    expect(world.gcp.tokenInfo(second).state).toBe('valid');

    // Close: nothing at Google can revoke the token, so the answer says exactly when it dies.
    const closed = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken, body: { exitCode: 0 } });
    expect(closed.status).toBe(200);
    expect(closed.body.state).toBe('closed');
    expect(closed.body.revoked).toEqual([
      expect.objectContaining({ name: 'gcp', provider: 'gcp', method: 'expiry', state: 'revoked', effectiveAt: last.expiresAt.toISOString() }),
    ]);
    const view = await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    expect(view.body.grants[0]).toMatchObject({ state: 'revoked', method: 'expiry', effectiveAt: last.expiresAt.toISOString() });

    // After the close: no heartbeat is accepted and nothing refreshes, even past refreshAt.
    const late = await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('STAGE_CLOSED');
    world.clock.advance(5 * MIN);
    await sleep(350); // a few reaper passes (every 100 ms)
    expect(world.gcp.calls.generateAccessToken).toBe(callsAtOpen + 1);
    // The last token lives until its exact end, honestly reported, and not a moment longer.
    expect(world.gcp.now().getTime()).toBeLessThan(last.expiresAt.getTime());
    expect(world.gcp.tokenInfo(second).state).toBe('valid');
    world.clock.advance(last.expiresAt.getTime() - world.clock.now() + 1000);
    expect(world.gcp.tokenInfo(first)).toMatchObject({ state: 'expired', active: false });
    expect(world.gcp.tokenInfo(second)).toMatchObject({ state: 'expired', active: false });

    const audit = (await wb.broker.store.readAudit(0, 1e6)).filter((e) => e.stageId === opened.body.stageId).map((e) => e.type);
    expect(audit).toEqual(['stage.opened', 'credential.issued', 'credential.refreshed', 'stage.closing', 'credential.revoked', 'stage.closed']);
    expectNoSecretTraces(await collectBrokerTraces(wb, [closed.text, view.text, late.text]), secrets);
  });

  it('a stage that goes silent is reaped: no refresh after its heartbeat lapsed, expiry reported', async () => {
    const opened = await wb.open('gcp-deploy');
    const token: string = opened.body.credentials[0].values.accessToken;
    const calls = world.gcp.calls.generateAccessToken;
    // 11 minutes without a heartbeat (the stage's heartbeat window is 10 min).
    world.clock.advance(11 * MIN);
    const deadline = Date.now() + 5000;
    let view;
    do {
      await sleep(50);
      view = await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    } while (view.body.state !== 'closed' && Date.now() < deadline);
    expect(view.body).toMatchObject({ state: 'closed', closeReason: 'heartbeat-lapsed' });
    expect(view.body.grants[0]).toMatchObject({ method: 'expiry', effectiveAt: world.gcp.issued.at(-1)!.expiresAt.toISOString() });
    expect(world.gcp.calls.generateAccessToken).toBe(calls);
    // Its one token had 10 minutes: it is dead now.
    expect(world.gcp.tokenInfo(token).state).toBe('expired');
  });
});

describe('gcp-iam: a close that lands while a refresh is in flight', () => {
  it('does not hand out the late token, so the reported effectiveAt stays the end of every token the stage holds', async () => {
    const w = await startProviderWorld();
    // The broker reaches Google through a proxy whose gate the test holds shut.
    const proxy = await startGatedHttpProxy({ host: w.gcp.host, port: w.gcp.port });
    const b = await startWorldBroker(w, { configure: (c) => void (c.providers.gcp.endpoint = { host: proxy.host, port: proxy.port, protocol: 'http' }) });
    try {
      const opened = await b.open('gcp-deploy');
      expect(opened.status).toBe(201);
      const first = w.gcp.issued.at(-1)!;
      w.clock.advance(5 * MIN);
      proxy.close();
      const heartbeat = call(b.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
      await proxy.waitForHeld(1);
      // The stage exits while its refresh is at Google.
      const closed = await call(b.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken, body: { exitCode: 0 } });
      expect(closed.body.revoked).toEqual([expect.objectContaining({ method: 'expiry', state: 'revoked', effectiveAt: first.expiresAt.toISOString() })]);
      proxy.open();
      const hb = await heartbeat;
      const late = w.gcp.issued.at(-1)!;
      expect(late.accessToken).not.toBe(first.accessToken); // Google did mint it …
      expect(hb.text).not.toContain(late.accessToken); // … but nobody gets it after the close.
      expect(hb.status).toBe(409);
      expect(hb.body.error.code).toBe('STAGE_CLOSED');
      expect(b.log.lines().some((l) => l.event === 'credential.refresh-discarded')).toBe(true);
      const view = await call(b.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
      expect(view.body.grants[0]).toMatchObject({ state: 'revoked', method: 'expiry', effectiveAt: first.expiresAt.toISOString() });
      expectNoSecretTraces(await collectBrokerTraces(b, [closed.text, view.text, hb.text]), [...w.brokerSecrets, ...secretsOfAnswer(opened.body), late.accessToken]);
    } finally {
      proxy.open();
      await b.close();
      await proxy.stop();
      await w.close();
    }
  });
});
