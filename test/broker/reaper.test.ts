import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../broker/config/load-config';
import { SqliteStore } from '../../broker/store/sqlite-store';
import { DevProvider } from '../../providers/dev/dev-provider';
import { startFakeOidcIssuer } from '../fakes/oidc-issuer';
import { buildClaims, call, defaultConfig, startBrokerProcess, startTestBroker, waitFor } from '../harness/broker';
import { createLogger } from '../../broker/logger';

describe('the reaper', () => {
  it('revokes a stage whose heartbeat lapsed', async () => {
    const tb = await startTestBroker();
    try {
      const { body: s } = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(), body: { stage: 'publish' } });
      expect(s.heartbeatSeconds).toBe(2);
      const value = s.credentials[0].values.token;
      const state = async () => (await call(tb.url, 'POST', '/v1/dev/check', { body: { value } })).body.state;
      expect(await state()).toBe('active');
      // heartbeats keep it alive past the 2 s window
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 900));
        expect((await call(tb.url, 'POST', `/v1/stages/${s.stageId}/heartbeat`, { token: s.stageToken })).status).toBe(200);
      }
      expect(await state()).toBe('active');
      // then silence: the reaper revokes within the heartbeat window plus a reaper pass
      const t0 = Date.now();
      await waitFor(async () => (await state()) === 'revoked', 5000, 'heartbeat-lapse revocation');
      expect(Date.now() - t0).toBeLessThan(3500);
      const view = await call(tb.url, 'GET', `/v1/stages/${s.stageId}`, { token: s.stageToken });
      expect(view.body).toMatchObject({ state: 'closed', closeReason: 'heartbeat-lapsed' });
    } finally {
      await tb.close();
    }
  });

  it('retries a failed revocation with backoff until it succeeds, and shows it pending meanwhile', async () => {
    const tb = await startTestBroker({ configure: (c) => void (c.providers.dev = { type: 'dev', failRevocations: 2 }) });
    try {
      const { body: s } = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(), body: { stage: 'repeatable' } });
      const closed = await call(tb.url, 'DELETE', `/v1/stages/${s.stageId}`, { token: s.stageToken, body: { exitCode: 0 } });
      expect(closed.status).toBe(200);
      expect(closed.body.state).toBe('closing');
      expect(closed.body.revoked[0]).toMatchObject({ name: 'deployer', state: 'pending', lastErrorCode: 'PROVIDER_UNAVAILABLE' });
      const value = s.credentials[0].values.secretAccessKey;
      await waitFor(async () => (await call(tb.url, 'POST', '/v1/dev/check', { body: { value } })).body.state === 'revoked', 5000, 'retried revocation');
      const view = await waitFor(async () => {
        const v = await call(tb.url, 'GET', `/v1/stages/${s.stageId}`, { token: s.stageToken });
        return v.body.state === 'closed' && v.body;
      }, 3000, 'stage closed');
      expect(view.grants[0]).toMatchObject({ state: 'revoked', method: 'native', attempts: 2 });
      const types = (await tb.broker.store.readAudit(0, 1e6)).filter((e) => e.stageId === s.stageId).map((e) => e.type);
      expect(types.filter((t) => t === 'credential.revoke-failed')).toHaveLength(2);
      expect(types.filter((t) => t === 'credential.revoked')).toHaveLength(1);
      expect(types.at(-1)).toBe('stage.closed');
    } finally {
      await tb.close();
    }
  });

  it('after a crash between recording the intent and recording the handle, a restarted broker revokes by intent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stagegate-crash-'));
    const issuer = await startFakeOidcIssuer();
    try {
      const dbPath = join(dir, 'broker.db');
      const ledger = join(dir, 'ledger.db');
      // What a crashed broker leaves: a stage `opening`, an intent, and a minted credential nobody recorded.
      const store = new SqliteStore({ path: dbPath });
      const dev = new DevProvider('dev', { type: 'dev', ledger, failRevocations: 0 }, { logger: createLogger({ level: 'silent' }), now: () => new Date() });
      const now = Date.now();
      const ctx = { stageId: '11111111-2222-4333-8444-555555555555', build: 'acme/web/1/1', stage: 'deploy', rule: 'web-main', issuer: 'ci', claims: {}, expiresAt: new Date(now + 60_000), maxExpiresAt: new Date(now + 60_000) };
      const grant = { name: 'deployer', provider: 'dev', params: { kind: 'aws' as const, scope: [], values: ['value'] } };
      const intent = dev.prepare(grant, ctx);
      await store.createStage({
        stage: { id: ctx.stageId, build: ctx.build, stage: 'deploy', phase: 'run', rule: 'web-main', issuer: 'ci', tokenSha256: 'a'.repeat(64), identitySha256: 'b'.repeat(64), openedAt: now, expiresAt: now + 60_000, maxExpiresAt: now + 60_000, heartbeatSeconds: 30, lastHeartbeatAt: now },
        grants: [{ name: 'deployer', provider: 'dev', intent }],
        once: true,
        requireCleanInstall: false,
        audit: [{ type: 'stage.opened', stageId: ctx.stageId, data: {} }],
      });
      const minted = await dev.issue(grant, ctx);
      expect(dev.check(minted.values.secretAccessKey!).state).toBe('active');
      await store.close();
      await dev.close();

      const tb = await startTestBroker({ issuer, dir, configure: (c) => void (c.providers.dev = { type: 'dev', ledger }) });
      try {
        const r = await call(tb.url, 'POST', '/v1/dev/check', { body: { value: minted.values.secretAccessKey } });
        expect(r.body.state).toBe('revoked');
        const stage = await tb.broker.store.getStage(ctx.stageId);
        expect(stage).toMatchObject({ state: 'closed', closeReason: 'crash-recovery' });
      } finally {
        await tb.close();
      }
    } finally {
      await issuer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a broker killed with SIGKILL mid-stage revokes the stage after it restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stagegate-kill-'));
    const issuer = await startFakeOidcIssuer();
    const cfg = defaultConfig(issuer, join(dir, 'broker.db'));
    cfg.providers.dev = { type: 'dev', ledger: join(dir, 'ledger.db') };
    cfg.logging = { level: 'info' };
    cfg.reaper = { intervalMs: 100 };
    buildConfig(cfg, dir); // the config is valid before we start a process on it
    let first = await startBrokerProcess(cfg, dir);
    try {
      const { body: s } = await call(first.url, 'POST', '/v1/stages', { token: await issuer.sign(buildClaims()), body: { stage: 'publish' } });
      const value = s.credentials[0].values.token;
      expect((await call(first.url, 'POST', '/v1/dev/check', { body: { value } })).body.state).toBe('active');
      await first.kill('SIGKILL');
      first = await startBrokerProcess(cfg, dir);
      await waitFor(async () => (await call(first.url, 'POST', '/v1/dev/check', { body: { value } })).body.state === 'revoked', 8000, 'revocation after restart');
      const view = await call(first.url, 'GET', `/v1/stages/${s.stageId}`, { token: s.stageToken });
      expect(view.body).toMatchObject({ state: 'closed', closeReason: 'heartbeat-lapsed' });
      expect(first.output()).not.toContain(value);
      expect(first.output()).not.toContain(s.stageToken);
    } finally {
      await first.kill('SIGKILL');
      await issuer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
