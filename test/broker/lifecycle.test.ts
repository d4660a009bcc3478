import { readFileSync } from 'node:fs';
import { buildClaims, call, startTestBroker, type TestBroker } from '../harness/broker';
import { expectNoLeaks, secretsOf } from '../harness/secrets';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb.close();
});

const open = (token: string, body: Record<string, unknown> = { stage: 'deploy' }) => call(tb.url, 'POST', '/v1/stages', { token, body });
const check = async (value: string) => (await call(tb.url, 'POST', '/v1/dev/check', { body: { value } })).body;

async function auditTypes(stageId: string): Promise<string[]> {
  const events = await tb.broker.store.readAudit(0, 100_000);
  return events.filter((e) => e.stageId === stageId).map((e) => e.type);
}

describe('stage lifecycle over HTTP', () => {
  it('opens a stage, delivers live credentials, and revokes all of them on close', async () => {
    const opened = await open(await tb.mintToken());
    expect(opened.status).toBe(201);
    const b = opened.body;
    expect(b.stageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.stageToken).toMatch(/^sgst_[A-Za-z0-9_-]{43}$/);
    expect(b.build).toMatch(/^acme\/web\/\d+\/1$/);
    expect(b.heartbeatSeconds).toBe(30);
    expect(b.credentials.map((c: any) => [c.name, c.kind, c.revocation])).toEqual([
      ['deployer', 'aws', 'native'],
      ['gcp', 'gcp-access-token', 'native'],
      ['db', 'secret', 'native'],
    ]);
    const aws = b.credentials[0].values;
    expect(Object.keys(aws).sort()).toEqual(['accessKeyId', 'secretAccessKey', 'sessionToken']);
    expect(await check(aws.secretAccessKey)).toMatchObject({ known: true, state: 'active', grant: 'deployer' });

    const state = await call(tb.url, 'GET', `/v1/stages/${b.stageId}`, { token: b.stageToken });
    expect(state.status).toBe(200);
    expect(state.body).toMatchObject({ state: 'open', installPhaseOpen: false });
    expect(state.body.grants.every((g: any) => g.state === 'issued')).toBe(true);

    const closed = await call(tb.url, 'DELETE', `/v1/stages/${b.stageId}`, { token: b.stageToken, body: { exitCode: 0 } });
    expect(closed.status).toBe(200);
    expect(closed.body.state).toBe('closed');
    expect(closed.body.revoked.map((r: any) => [r.name, r.method, r.state])).toEqual([
      ['deployer', 'native', 'revoked'],
      ['gcp', 'native', 'revoked'],
      ['db', 'native', 'revoked'],
    ]);
    for (const c of b.credentials) for (const v of Object.values(c.values) as string[]) expect((await check(v)).state).toBe('revoked');
    expect(await auditTypes(b.stageId)).toEqual([
      'stage.opened',
      'credential.issued',
      'credential.issued',
      'credential.issued',
      'stage.closing',
      'credential.revoked',
      'credential.revoked',
      'credential.revoked',
      'stage.closed',
    ]);
  });

  it('closing is idempotent and concurrent closes revoke each credential once', async () => {
    const { body: b } = await open(await tb.mintToken());
    const closes = await Promise.all(
      Array.from({ length: 5 }, () => call(tb.url, 'DELETE', `/v1/stages/${b.stageId}`, { token: b.stageToken })),
    );
    for (const c of closes) expect(c.status).toBe(200);
    const again = await call(tb.url, 'DELETE', `/v1/stages/${b.stageId}`, { token: b.stageToken });
    expect(again.body.state).toBe('closed');
    expect(again.body.revoked.every((r: any) => r.state === 'revoked')).toBe(true);
    const revokedEvents = (await auditTypes(b.stageId)).filter((t) => t === 'credential.revoked');
    expect(revokedEvents).toHaveLength(3);
  });

  it('a replayed identity token cannot reopen a stage that ran (409), nor does a fresh token of the same build', async () => {
    const claims = buildClaims();
    const token = await tb.mintToken(claims);
    const first = await open(token);
    expect(first.status).toBe(201);
    await call(tb.url, 'DELETE', `/v1/stages/${first.body.stageId}`, { token: first.body.stageToken });
    const replay = await open(token);
    expect(replay.status).toBe(409);
    expect(replay.body.error.code).toBe('STAGE_ALREADY_RAN');
    const fresh = await open(await tb.mintToken(claims));
    expect(fresh.body.error.code).toBe('STAGE_ALREADY_RAN');
    // while it is still open, too
    const t2 = await tb.mintToken();
    const a = await open(t2);
    expect((await open(t2)).body.error.code).toBe('STAGE_ALREADY_RAN');
    // a new attempt of the same run is a new build
    const retry = await open(await tb.mintToken({ ...claims, run_attempt: '2' }));
    expect(retry.status).toBe(201);
    await call(tb.url, 'DELETE', `/v1/stages/${a.body.stageId}`, { token: a.body.stageToken });
    await call(tb.url, 'DELETE', `/v1/stages/${retry.body.stageId}`, { token: retry.body.stageToken });
  });

  it('a stage with once: false may open again in the same build', async () => {
    const token = await tb.mintToken();
    for (let i = 0; i < 2; i++) {
      const r = await open(token, { stage: 'repeatable' });
      expect(r.status).toBe(201);
      await call(tb.url, 'DELETE', `/v1/stages/${r.body.stageId}`, { token: r.body.stageToken });
    }
  });

  it('issues all or nothing: when one grant fails, the ones issued are revoked and the open fails with a code', async () => {
    const before = (await tb.broker.store.readAudit(0, 100_000)).length;
    const r = await open(await tb.mintToken(), { stage: 'flaky' });
    expect(r.status).toBe(503);
    expect(r.body.error).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', details: { grant: 'down', provider: 'dev' } });
    const events = (await tb.broker.store.readAudit(0, 100_000)).slice(before);
    const stageId = events.find((e) => e.type === 'stage.opened')!.stageId!;
    const issued = events.find((e) => e.type === 'credential.issued')!;
    expect(issued.data.grant).toBe('ok');
    const stage = await tb.broker.store.getStage(stageId);
    expect(stage!.state).toBe('failed');
    const grants = await tb.broker.store.getGrants(stageId);
    expect(grants.map((g) => [g.name, g.state])).toEqual([
      ['ok', 'revoked'],
      ['down', 'revoked'],
    ]);
    // nothing was delivered, so the build may try the stage again
    const again = await open(await tb.mintToken(), { stage: 'flaky' });
    expect(again.status).toBe(503);
  });

  it('heartbeat keeps the stage open and is refused after close', async () => {
    const { body: b } = await open(await tb.mintToken(), { stage: 'publish' });
    const hb = await call(tb.url, 'POST', `/v1/stages/${b.stageId}/heartbeat`, { token: b.stageToken });
    expect(hb.status).toBe(200);
    expect(hb.body).toMatchObject({ stageId: b.stageId, state: 'open', installPhaseOpen: false, credentials: [] });
    await call(tb.url, 'DELETE', `/v1/stages/${b.stageId}`, { token: b.stageToken });
    const late = await call(tb.url, 'POST', `/v1/stages/${b.stageId}/heartbeat`, { token: b.stageToken });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('STAGE_CLOSED');
  });

  it('stage endpoints refuse a missing or wrong stage token, and another stage\'s token', async () => {
    const { body: a } = await open(await tb.mintToken());
    const { body: b } = await open(await tb.mintToken());
    for (const token of [undefined, 'sgst_wrong', b.stageToken]) {
      for (const [method, path] of [
        ['GET', `/v1/stages/${a.stageId}`],
        ['POST', `/v1/stages/${a.stageId}/heartbeat`],
        ['DELETE', `/v1/stages/${a.stageId}`],
      ] as const) {
        const r = await call(tb.url, method, path, { token });
        expect([r.status, r.body.error.code]).toEqual([401, 'UNAUTHENTICATED']);
      }
    }
    expect((await check(a.credentials[0].values.accessKeyId)).state).toBe('active');
    const unknown = await call(tb.url, 'GET', '/v1/stages/00000000-0000-4000-8000-000000000000', { token: a.stageToken });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'STAGE_NOT_FOUND']);
    for (const s of [a, b]) await call(tb.url, 'DELETE', `/v1/stages/${s.stageId}`, { token: s.stageToken });
  });

  it('denies a build whose claims match no rule, naming the rule and the claim', async () => {
    const r = await open(await tb.mintToken(buildClaims({ ref: 'refs/heads/feature' })));
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: 'POLICY_DENIED', details: { rule: 'web-main', claim: 'ref', reason: 'claims', value: 'refs/heads/feature' } });
    const none = await open(await tb.mintToken(), { stage: 'nonexistent' });
    expect(none.body.error).toMatchObject({ code: 'POLICY_DENIED', details: { reason: 'no-rule' } });
    const phase = await open(await tb.mintToken(), { stage: 'deploy', phase: 'install' });
    expect(phase.body.error).toMatchObject({ code: 'POLICY_DENIED', details: { reason: 'phase' } });
  });

  it('keeps every secret out of logs, the store file and audit events', async () => {
    const opened = await open(await tb.mintToken());
    const secrets = secretsOf(opened.body);
    const idToken = await tb.mintToken();
    secrets.push(idToken);
    await open(idToken); // a second stage open of another build
    await call(tb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
    await call(tb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    await call(tb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    await call(tb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: 'sgst_wrong' });
    expectNoLeaks(tb.log.text(), secrets, 'broker logs');
    expectNoLeaks(JSON.stringify(await tb.broker.store.readAudit(0, 1e6)), secrets, 'audit events');
    const files = ['', '-wal'].map((s) => {
      try {
        return readFileSync(tb.dbPath + s).toString('latin1');
      } catch {
        return '';
      }
    });
    expectNoLeaks(files.join(''), secrets, 'the SQLite store');
  });
});
