/**
 * The `vault` provider through a real broker over HTTP, configured purely from YAML
 * (address + token-file auth): a stage's Vault token works with node-vault (lookup-self,
 * a read its policy allows, and only that), its database credentials are a live lease,
 * its static KV value is handed out as `none`; the close reports `native` for the token
 * and the lease, and afterwards Vault refuses the token and the database user is gone.
 */
import { call } from '../harness/broker';
import { KV_APP_PASSWORD, KV_NPM_TOKEN, startProviderWorld, startWorldBroker, type ProviderWorld, type WorldBroker } from './provider-harness/provider-world';
import { collectBrokerTraces, expectNoSecretTraces, secretsOfAnswer } from './provider-harness/scan-broker-traces';
import { tryVaultRead, tryVaultToken } from './provider-harness/use-stage-credentials';

jest.setTimeout(20_000);

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

describe('vault through the broker', () => {
  it('issues a working token, a live database lease and a static KV value; the close revokes natively what Vault can revoke', async () => {
    const opened = await wb.open('vault-deploy');
    expect(opened.status).toBe(201);
    const secrets = [...world.brokerSecrets, ...secretsOfAnswer(opened.body), KV_NPM_TOKEN, KV_APP_PASSWORD];
    const byName = Object.fromEntries(opened.body.credentials.map((c: any) => [c.name, c]));
    expect(byName['vault-token']).toMatchObject({ provider: 'vault', kind: 'vault-token', revocation: 'native', meta: { vaultAddress: world.vault.url } });
    expect(byName.db).toMatchObject({ provider: 'vault', kind: 'secret', revocation: 'native' });
    expect(byName.npm).toMatchObject({ provider: 'vault', kind: 'secret', revocation: 'none', values: { token: KV_NPM_TOKEN } });

    // The token works, for what its policy allows and nothing else.
    const token: string = byName['vault-token'].values.token;
    expect(await tryVaultToken(world.vault.url, token)).toBe('ok');
    expect(await tryVaultRead(world.vault.url, token, 'secret/data/app/config')).toMatchObject({ data: { password: KV_APP_PASSWORD } });
    expect(await tryVaultRead(world.vault.url, token, 'secret/data/ci/npm')).toBe(403);
    // It names the stage in Vault's metadata, and cannot outlive the stage's max TTL.
    const info = world.vault.tokens().find((t) => t.meta.stagegate_stage_id === opened.body.stageId && t.meta.stagegate_grant === 'vault-token')!;
    expect(info).toMatchObject({ orphan: true, policies: expect.arrayContaining(['app-read']) });
    expect(info.explicitMaxTtl).toBeLessThanOrEqual(3600);

    // The database credentials are a live lease.
    const { username, password } = byName.db.values;
    expect(password.length).toBeGreaterThan(8);
    expect(world.vault.isDatabaseUserValid(username)).toBe(true);
    const lease = world.vault.leases().find((l) => l.username === username)!;
    expect(world.vault.isLeaseValid(lease.leaseId)).toBe(true);

    const closed = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken, body: { exitCode: 1 } });
    expect(closed.status).toBe(200);
    expect(closed.body.state).toBe('closed');
    expect(closed.body.revoked.map((r: any) => [r.name, r.provider, r.method, r.state])).toEqual([
      ['vault-token', 'vault', 'native', 'revoked'],
      ['db', 'vault', 'native', 'revoked'],
      ['npm', 'vault', 'none', 'revoked'],
    ]);

    // Vault refuses the token now; the lease and the database user are gone.
    expect(await tryVaultToken(world.vault.url, token)).toBe(403);
    expect(await tryVaultRead(world.vault.url, token, 'secret/data/app/config')).toBe(403);
    expect(world.vault.isLeaseValid(lease.leaseId)).toBe(false);
    expect(world.vault.isDatabaseUserValid(username)).toBe(false);
    expect(world.vault.tokens().filter((t) => t.meta.stagegate_stage_id === opened.body.stageId)).toEqual([]);

    const view = await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    expect(view.body).toMatchObject({ state: 'closed', closeReason: 'exit', exitCode: 1 });
    expect(view.body.grants.map((g: any) => [g.name, g.state, g.method])).toEqual([
      ['vault-token', 'revoked', 'native'],
      ['db', 'revoked', 'native'],
      ['npm', 'revoked', 'none'],
    ]);
    expectNoSecretTraces(await collectBrokerTraces(wb, [closed.text, view.text]), secrets);
  });

  it('a heartbeat extends the stage without touching Vault, and a closed stage refuses heartbeats', async () => {
    const opened = await wb.open('vault-deploy');
    const requestsBefore = world.vault.requests.length;
    const hb = await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
    expect(hb.status).toBe(200);
    expect(hb.body).toMatchObject({ state: 'open', credentials: [] });
    expect(world.vault.requests.length).toBe(requestsBefore);
    await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
    const late = await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('STAGE_CLOSED');
  });
});
