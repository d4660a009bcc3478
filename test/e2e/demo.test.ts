/**
 * The README demo, as a test: the shipped dev config with its demo issuer, a token from
 * /demo/token, `stagegate run` with the example command, and the credential refused
 * after the stage closed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CLI, REPO_ROOT, call, startBrokerProcess, type BrokerProcess } from '../harness/broker';

let dir: string;
let broker: BrokerProcess;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sg-demo-'));
  const cfg = parse(readFileSync(join(REPO_ROOT, 'examples', 'dev.yaml'), 'utf8'));
  cfg.listen.port = 0;
  cfg.store.sqlite.path = join(dir, 'dev.db');
  cfg.providers.dev.ledger = join(dir, 'ledger.db');
  broker = await startBrokerProcess(cfg, dir);
});
afterAll(async () => {
  await broker.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

it('runs the quick start: demo token, stagegate run with the example, credential revoked after', async () => {
  const token = await fetch(`${broker.url}/demo/token`, { method: 'POST' });
  expect(token.headers.get('content-type')).toContain('application/jwt');
  const tokenFile = join(dir, 'id.jwt');
  writeFileSync(tokenFile, await token.text());
  const keyFile = join(dir, 'key');
  const child = spawn(process.execPath, [CLI, 'run', '--identity-token-file', tokenFile, '--stage', 'deploy', '--', process.execPath, join(REPO_ROOT, 'examples', 'show-credentials.js')], {
    env: { ...process.env, STAGEGATE_BROKER_URL: broker.url, STAGEGATE_DEMO_BROKER: broker.url, STAGEGATE_DEMO_KEY_FILE: keyFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  expect(code).toBe(0);
  expect(out).toContain('the dev provider says this credential is active');
  expect(out).toMatch(/revoked deployer \(dev\) by native/);
  const after = await call(broker.url, 'POST', '/v1/dev/check', { body: { value: readFileSync(keyFile, 'utf8') } });
  expect(after.body).toMatchObject({ known: true, state: 'revoked', grant: 'deployer' });
});

it('the demo issuer publishes only its public key', async () => {
  const r = await call(broker.url, 'GET', '/demo/jwks');
  expect(r.status).toBe(200);
  expect(r.body.keys[0]).toMatchObject({ kty: 'EC', alg: 'ES256' });
  expect(r.body.keys[0].d).toBeUndefined();
});
