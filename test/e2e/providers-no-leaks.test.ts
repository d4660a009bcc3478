/**
 * DESIGN.md guarantee 6 across all three real providers at once: after a stage with AWS,
 * Vault (token and database lease) and GCP grants has been opened, refreshed, looked at,
 * refused with bad input, and closed — and after a failed open during an outage — no
 * credential value (AWS secret keys and session tokens, Vault tokens and passwords, GCP
 * access tokens, the stage token) and none of the broker's own cloud secrets is in the
 * broker's log lines, the SQLite file or its WAL, the audit chain, the metrics, or any
 * error body or close answer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { call } from '../harness/broker';
import { KV_NPM_TOKEN, startProviderWorld, startWorldBroker, type ProviderWorld, type WorldBroker } from './provider-harness/provider-world';
import { collectBrokerTraces, expectNoSecretTraces, secretsOfAnswer, type Trace } from './provider-harness/scan-broker-traces';
import { tryAwsCredential, tryVaultToken } from './provider-harness/use-stage-credentials';

jest.setTimeout(20_000);

let world: ProviderWorld;
let wb: WorldBroker | undefined;
beforeAll(async () => {
  world = await startProviderWorld();
});
afterAll(async () => {
  await wb?.close();
  await world?.close();
});

it('no credential material in logs, store, WAL, audit, metrics or error bodies', async () => {
  wb = await startWorldBroker(world, {
    configure: (c) => {
      c.rules[0].stages['all-three'].grants.push({ name: 'npm', provider: 'vault', type: 'kv', path: 'ci/npm', static: true });
    },
  });
  const secrets: string[] = [...world.brokerSecrets, KV_NPM_TOKEN];
  const answers: string[] = [];

  const opened = await wb.open('all-three');
  expect(opened.status).toBe(201);
  secrets.push(...secretsOfAnswer(opened.body));
  const value = (grant: string, key: string): string => opened.body.credentials.find((c: any) => c.name === grant).values[key];
  expect(value('npm', 'token')).toBe(KV_NPM_TOKEN);
  // Each credential is real, so the scan looks for values that were really usable.
  expect(await tryAwsCredential(world.aws.url, opened.body.credentials[0].values)).toBe('ok');
  expect(await tryVaultToken(world.vault.url, value('vault-token', 'token'))).toBe('ok');
  expect(world.gcp.tokenInfo(value('gcp', 'accessToken')).state).toBe('valid');
  expect(value('db', 'password').length).toBeGreaterThan(8);

  // A GCP refresh through a heartbeat (the refreshed token is secret too).
  world.clock.advance(5 * 60_000);
  const hb = await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken });
  expect(hb.body.credentials).toHaveLength(1);
  secrets.push(...secretsOfAnswer(hb.body));

  // Error paths: a wrong stage token, a secret presented as a stage token, a failed open during an outage.
  answers.push((await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: 'sgst_wrong' })).text);
  answers.push((await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: value('vault-token', 'token') })).text);
  answers.push((await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: value('aws', 'secretAccessKey') })).text);
  world.vault.setOutage({ status: 503 });
  const failed = await wb.open('all-three');
  world.vault.setOutage(null);
  expect(failed.status).toBe(503);
  answers.push(failed.text);
  answers.push((await call(wb.url, 'GET', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken })).text);
  const closed = await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken, body: { exitCode: 0 } });
  expect(closed.body.state).toBe('closed');
  answers.push(closed.text);
  answers.push((await call(wb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, { token: opened.body.stageToken })).text);
  answers.push((await call(wb.url, 'GET', '/metrics')).text);

  // While the broker runs: the WAL holds the newest writes.
  const running = await collectBrokerTraces(wb, answers);
  expect(running.map((t) => t.where)).toEqual(expect.arrayContaining(['broker log', 'store file broker.db', 'store file broker.db-wal', 'audit chain']));
  expect(wb.log.lines().length).toBeGreaterThan(20);
  expectNoSecretTraces(running, secrets);

  // After a clean stop (WAL checkpointed into the main file), and the log of the whole run.
  await wb.close();
  const after: Trace[] = [{ where: 'broker log', bytes: Buffer.from(wb.log.text()) }];
  for (const suffix of ['', '-wal']) {
    const file = `${wb.dbPath}${suffix}`;
    if (existsSync(file)) after.push({ where: `store file broker.db${suffix} (stopped)`, bytes: readFileSync(file) });
  }
  expectNoSecretTraces(after, secrets);
  wb = undefined;
});

it('the scan is not vacuous: a secret that does reach the store is found', async () => {
  wb = await startWorldBroker(world);
  const opened = await wb.open('aws-deploy');
  const secret = opened.body.credentials[0].values.secretAccessKey;
  // Put a secret where the scan must look, as a buggy provider handle would.
  await wb.broker.store.appendAudit([{ type: 'credential.issued', stageId: opened.body.stageId, data: { handle: { oops: secret } } }]);
  const traces = await collectBrokerTraces(wb);
  expect(() => expectNoSecretTraces(traces, [secret])).toThrow(/secret material found/);
  await call(wb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, { token: opened.body.stageToken });
});
