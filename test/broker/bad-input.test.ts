import { call, startTestBroker, type TestBroker } from '../harness/broker';

let tb: TestBroker;
let token: string;
beforeAll(async () => {
  tb = await startTestBroker({ configure: (c) => void (c.limits = { maxBodyBytes: 64 * 1024 }) });
});
beforeEach(async () => {
  token = await tb.mintToken();
});
afterAll(async () => {
  await tb.close();
});

async function snapshot() {
  return { counts: await tb.broker.store.counts(), stages: (await tb.broker.store.readAudit(0, 1e6)).filter((e) => e.type === 'stage.opened').length };
}

describe('bad input gets a coded 4xx and changes nothing', () => {
  const nested = (depth: number) => '{"stage":"deploy","evidence":[' + '{"a":'.repeat(depth) + '1' + '}'.repeat(depth) + ']}';
  const cases: Array<[string, { rawBody?: string; body?: unknown; headers?: Record<string, string> }, number, string]> = [
    ['malformed JSON', { rawBody: '{"stage": "deploy",' }, 400, 'INVALID_REQUEST'],
    ['a JSON array body', { rawBody: '[1,2]' }, 400, 'INVALID_REQUEST'],
    ['an unknown field', { body: { stage: 'deploy', extra: true } }, 400, 'INVALID_REQUEST'],
    ['a missing stage', { body: { phase: 'run' } }, 400, 'INVALID_REQUEST'],
    ['a stage name with a path in it', { body: { stage: '../deploy' } }, 400, 'INVALID_REQUEST'],
    ['an unknown phase', { body: { stage: 'deploy', phase: 'build' } }, 400, 'INVALID_REQUEST'],
    ['a bad artifact digest', { body: { stage: 'deploy', artifacts: [{ digest: { sha256: 'xyz' } }] } }, 400, 'INVALID_REQUEST'],
    ['too many evidence items', { body: { stage: 'deploy', evidence: Array.from({ length: 17 }, () => ({})) } }, 413, 'PAYLOAD_TOO_LARGE'],
    ['evidence that is not a list', { body: { stage: 'deploy', evidence: { type: 'dsse' } } }, 400, 'INVALID_REQUEST'],
    ['deeply nested evidence', { rawBody: nested(200) }, 400, 'INVALID_REQUEST'],
    ['an oversized body', { body: { stage: 'deploy', evidence: [{ blob: 'x'.repeat(70 * 1024) }] } }, 413, 'PAYLOAD_TOO_LARGE'],
    ['a non-JSON content type', { rawBody: 'stage=deploy', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['an empty body', { rawBody: '' }, 400, 'INVALID_REQUEST'],
  ];

  it.each(cases)('%s', async (_name, req, status, code) => {
    const before = await snapshot();
    const r = await call(tb.url, 'POST', '/v1/stages', { token, ...req });
    expect(r.status).toBe(status);
    expect(r.body.error.code).toBe(code);
    expect(typeof r.body.error.message).toBe('string');
    expect(await snapshot()).toEqual(before);
    // the token is still good: nothing was consumed
    const ok = await call(tb.url, 'POST', '/v1/stages', { token, body: { stage: 'repeatable' } });
    expect(ok.status).toBe(201);
    await call(tb.url, 'DELETE', `/v1/stages/${ok.body.stageId}`, { token: ok.body.stageToken });
  });

  it('an invalid request names the field that is wrong', async () => {
    const r = await call(tb.url, 'POST', '/v1/stages', { token, body: { stage: 'deploy', bogus: 1 } });
    expect(JSON.stringify(r.body.error.details.problems)).toContain('bogus');
  });

  it('unknown routes and methods are coded too', async () => {
    const r = await call(tb.url, 'GET', '/v2/nothing');
    expect([r.status, r.body.error.code]).toEqual([404, 'NOT_FOUND']);
    const m = await call(tb.url, 'PUT', '/v1/stages');
    expect([m.status, m.body.error.code]).toEqual([405, 'METHOD_NOT_ALLOWED']);
    const bad = await call(tb.url, 'GET', '/v1/stages/not-a-uuid', { token: 'x' });
    expect([bad.status, bad.body.error.code]).toEqual([404, 'STAGE_NOT_FOUND']);
  });

  it('a close body with unknown fields is refused and the stage stays open', async () => {
    const { body: s } = await call(tb.url, 'POST', '/v1/stages', { token, body: { stage: 'repeatable' } });
    const r = await call(tb.url, 'DELETE', `/v1/stages/${s.stageId}`, { token: s.stageToken, body: { exitCode: 0, why: 'x' } });
    expect([r.status, r.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
    expect((await call(tb.url, 'GET', `/v1/stages/${s.stageId}`, { token: s.stageToken })).body.state).toBe('open');
    await call(tb.url, 'DELETE', `/v1/stages/${s.stageId}`, { token: s.stageToken });
  });

  it('health, readiness and metrics answer', async () => {
    expect((await call(tb.url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await call(tb.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ store: 'ok', 'provider:dev': 'ok' });
    const m = await call(tb.url, 'GET', '/metrics');
    expect(m.text).toContain('stagegate_open_stages');
    expect(m.text).toContain('stagegate_denials_total');
    expect(m.text).toContain('stagegate_stage_opens_total{result="opened"}');
  });
});

describe('the install lock', () => {
  it('while a build\'s install phase is open, every stage open of that build is denied, whoever asks', async () => {
    const claims = { repository: 'acme/web', ref: 'refs/heads/main', run_id: String(Date.now()), run_attempt: '1', sha: 'a'.repeat(40) };
    const inst = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(claims), body: { stage: 'install', phase: 'install' } });
    expect(inst.status).toBe(201);
    expect(inst.body.credentials).toEqual([]);
    for (const stage of ['deploy', 'publish', 'repeatable']) {
      const r = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken({ ...claims, sub: 'other-job' }), body: { stage } });
      expect([r.status, r.body.error.code]).toEqual([409, 'INSTALL_PHASE_OPEN']);
    }
    // another build is not affected
    const other = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken({ ...claims, run_id: '42' }), body: { stage: 'repeatable' } });
    expect(other.status).toBe(201);
    await call(tb.url, 'DELETE', `/v1/stages/${other.body.stageId}`, { token: other.body.stageToken });
    // a stage that requires install cannot open before a clean install, nor during it
    const g = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(claims), body: { stage: 'guarded' } });
    expect(g.body.error.code).toBe('INSTALL_PHASE_OPEN');
    await call(tb.url, 'DELETE', `/v1/stages/${inst.body.stageId}`, { token: inst.body.stageToken, body: { exitCode: 0 } });
    const after = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(claims), body: { stage: 'guarded' } });
    expect(after.status).toBe(201);
    // and install cannot start while a credential-bearing stage of the build is open
    const inst2 = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken({ ...claims }), body: { stage: 'install', phase: 'install' } });
    expect(inst2.body.error.code).toBe('RUN_STAGE_OPEN');
    await call(tb.url, 'DELETE', `/v1/stages/${after.body.stageId}`, { token: after.body.stageToken });
    const denied = (await tb.broker.store.readAudit(0, 1e6)).filter((e) => e.type === 'stage.denied' && e.data.code === 'INSTALL_PHASE_OPEN');
    expect(denied.length).toBeGreaterThanOrEqual(4);
  });

  it('a stage with requireInstallPhase stays closed when the install failed or never ran', async () => {
    const claims = { repository: 'acme/web', ref: 'refs/heads/main', run_id: String(Date.now() + 1), run_attempt: '1' };
    const never = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(claims), body: { stage: 'guarded' } });
    expect([never.status, never.body.error.code]).toEqual([409, 'INSTALL_PHASE_REQUIRED']);
    const inst = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(claims), body: { stage: 'install', phase: 'install' } });
    await call(tb.url, 'DELETE', `/v1/stages/${inst.body.stageId}`, { token: inst.body.stageToken, body: { exitCode: 1 } });
    const failed = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(claims), body: { stage: 'guarded' } });
    expect(failed.body.error.code).toBe('INSTALL_PHASE_REQUIRED');
  });
});
