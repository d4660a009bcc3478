/**
 * The local credential endpoints, standalone with static credentials, used by the REAL
 * AWS SDK credential chain and google-auth-library in child processes.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Credential } from '../../sdk/client';
import {
  buildStageEnv,
  createStageFiles,
  createStageGate,
  startLocalCredentialEndpoints,
  type LocalEndpoints,
  type RefusalEvent,
  type StageFiles,
} from '../../sdk/local-endpoints';
import { startFakeVault } from '../fakes/vault';
import { AWS_CHAIN_SCRIPT, GOOGLE_AUTH_SCRIPT, isolatedEnv, lastJsonLine, runChild } from './run-child';

const expires = new Date(Date.now() + 3600_000).toISOString();
const AWS: Credential = {
  name: 'deployer', provider: 'static', kind: 'aws', expiresAt: expires, revocation: 'deny-policy',
  values: { accessKeyId: 'ASIATESTKEY1234567', secretAccessKey: 'secret-access-key-value-abcdef', sessionToken: 'session-token-value-0123456789' },
  meta: { region: 'eu-west-1', accountId: '123456789012' },
};
const GCP: Credential = {
  name: 'gcp', provider: 'static', kind: 'gcp-access-token', expiresAt: expires, revocation: 'expiry',
  values: { accessToken: 'ya29.test-access-token-value-xyz' },
  meta: { serviceAccountEmail: 'deployer@proj-1.iam.gserviceaccount.com', projectId: 'proj-1' },
};
const DB: Credential = {
  name: 'db', provider: 'static', kind: 'secret', expiresAt: expires, revocation: 'none',
  values: { username: 'db-user-value-1', password: 'db-password-value-1' },
};
const SECRETS = [...Object.values(AWS.values), ...Object.values(GCP.values), ...Object.values(DB.values)];

let home: string;
let stageState: { state: 'open' | 'closing' | 'closed' | 'failed'; installPhaseOpen: boolean };
let endpoints: LocalEndpoints;
let files: StageFiles;
let refusals: RefusalEvent[];

beforeEach(async () => {
  home = mkdtempSync(join(tmpdir(), 'sg-home-'));
  stageState = { state: 'open', installPhaseOpen: false };
  refusals = [];
  endpoints = await startLocalCredentialEndpoints({
    credentials: [AWS, GCP, DB],
    gate: createStageGate({ getStage: async () => stageState, cacheMs: 0 }),
    onRefused: (e) => refusals.push(e),
  });
  files = createStageFiles();
});

afterEach(async () => {
  await endpoints.close();
  files.remove();
  rmSync(home, { recursive: true, force: true });
});

function deliveryEnv(): Record<string, string> {
  // Start from an env that has competing credentials: delivery must remove them.
  const base = { PATH: '/usr/bin', AWS_ACCESS_KEY_ID: 'AKIAOTHER', AWS_SECRET_ACCESS_KEY: 'other', AWS_PROFILE: 'other', GOOGLE_APPLICATION_CREDENTIALS: '/nope.json' };
  return buildStageEnv({ baseEnv: base, mode: 'endpoint', credentials: [AWS, GCP, DB], endpoints, files }).env;
}

/** GET with exact headers (fetch would add its own). */
function get(path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${endpoints.origin}${path}`, { headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('AWS container-credentials endpoint', () => {
  it('gives the real AWS SDK default chain the credentials, from the delivery env alone', async () => {
    const env = deliveryEnv();
    expect(env.AWS_ACCESS_KEY_ID).toBeUndefined();
    expect(env.AWS_PROFILE).toBeUndefined();
    expect(env.AWS_CONTAINER_CREDENTIALS_FULL_URI).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    const tokenFile = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE!;
    // The SDK does not trim the file: no newline, private mode, private directory.
    expect(readFileSync(tokenFile, 'utf8')).toBe(endpoints.awsToken);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(statSync(files.dir).mode & 0o777).toBe(0o700);
    expect(Object.values(env).join('\n')).not.toContain(endpoints.awsToken);

    const r = await runChild(process.execPath, ['-e', AWS_CHAIN_SCRIPT], { env: isolatedEnv(home, pick(env, 'AWS_')) });
    const out = lastJsonLine(r.stdout);
    expect(out).toMatchObject({
      ok: true,
      accessKeyId: AWS.values.accessKeyId,
      secretAccessKey: AWS.values.secretAccessKey,
      sessionToken: AWS.values.sessionToken,
    });
    expect(new Date(out.expiration as string).getTime()).toBe(Math.floor(new Date(expires).getTime() / 1000) * 1000);
  });

  it('answers RFC 3339 with Z and refuses a missing or wrong token with {Code, Message}', async () => {
    const ok = await get('/stagegate/aws-credentials', { authorization: endpoints.awsToken });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).AccountId).toBe('123456789012');
    expect(JSON.parse(ok.body).Expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const missing = await get('/stagegate/aws-credentials', {});
    expect(missing.status).toBe(401);
    expect(JSON.parse(missing.body)).toEqual({ Code: 'Unauthorized', Message: expect.any(String) });
    const wrong = await get('/stagegate/aws-credentials', { authorization: `${endpoints.awsToken}x` });
    expect(wrong.status).toBe(403);
    const bearer = await get('/stagegate/aws-credentials', { authorization: `Bearer ${endpoints.awsToken}` });
    expect(bearer.status).toBe(403);
    for (const r of [missing, wrong, bearer]) for (const s of SECRETS) expect(r.body).not.toContain(s);
    expect(refusals.map((e) => e.code)).toEqual(['MissingToken', 'InvalidToken', 'InvalidToken']);
  });

  it('the SDK chain fails (and leaks nothing) without the token, with a wrong token, or with a trailing newline', async () => {
    const env = deliveryEnv();
    const variants: Array<Record<string, string>> = [
      { AWS_CONTAINER_CREDENTIALS_FULL_URI: env.AWS_CONTAINER_CREDENTIALS_FULL_URI! },
      { AWS_CONTAINER_CREDENTIALS_FULL_URI: env.AWS_CONTAINER_CREDENTIALS_FULL_URI!, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'guessed-token' },
      { AWS_CONTAINER_CREDENTIALS_FULL_URI: env.AWS_CONTAINER_CREDENTIALS_FULL_URI!, AWS_CONTAINER_AUTHORIZATION_TOKEN: `${endpoints.awsToken}\n` },
    ];
    const results = await Promise.all(variants.map((v) => runChild(process.execPath, ['-e', AWS_CHAIN_SCRIPT], { env: isolatedEnv(home, v) })));
    for (const r of results) {
      expect(lastJsonLine(r.stdout).ok).toBe(false);
      for (const s of [...SECRETS, endpoints.awsToken]) {
        expect(r.stdout).not.toContain(s);
        expect(r.stderr).not.toContain(s);
      }
    }
  });

  it('refuses while the stage is not open or the install phase is open, and after close', async () => {
    stageState = { state: 'closing', installPhaseOpen: false };
    expect((await get('/stagegate/aws-credentials', { authorization: endpoints.awsToken })).status).toBe(403);
    stageState = { state: 'open', installPhaseOpen: true };
    const install = await get('/stagegate/aws-credentials', { authorization: endpoints.awsToken });
    expect(install.status).toBe(403);
    expect(JSON.parse(install.body).Code).toBe('InstallPhaseOpen');
    stageState = { state: 'open', installPhaseOpen: false };
    expect((await get('/stagegate/aws-credentials', { authorization: endpoints.awsToken })).status).toBe(200);

    const env = deliveryEnv();
    await endpoints.close();
    await expect(get('/stagegate/aws-credentials', { authorization: endpoints.awsToken })).rejects.toThrow(/ECONNREFUSED/);
    const r = await runChild(process.execPath, ['-e', AWS_CHAIN_SCRIPT], { env: isolatedEnv(home, pick(env, 'AWS_')) });
    expect(lastJsonLine(r.stdout).ok).toBe(false);
  });

  it('fails closed when the broker cannot confirm the stage', async () => {
    await endpoints.close();
    endpoints = await startLocalCredentialEndpoints({
      credentials: [AWS],
      gate: createStageGate({ getStage: async () => { throw new Error('broker down'); } }),
    });
    const r = await get('/stagegate/aws-credentials', { authorization: endpoints.awsToken });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).Code).toBe('BrokerUnavailable');
  });
});

describe('GCE metadata endpoint', () => {
  it('gives google-auth-library the token when it runs as a descendant of the stage process', async () => {
    const env = deliveryEnv();
    expect(env.GOOGLE_APPLICATION_CREDENTIALS).toBeUndefined();
    // The stage process is a shell; google-auth-library runs in its grandchild.
    const childEnv = isolatedEnv(home, { ...pick(env, 'GCE_'), GOOGLE_CLOUD_PROJECT: env.GOOGLE_CLOUD_PROJECT!, SCRIPT: GOOGLE_AUTH_SCRIPT, NODE: process.execPath });
    const sh = spawn('/bin/sh', ['-c', 'read go; "$NODE" -e "$SCRIPT"'], { cwd: process.cwd(), env: childEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    endpoints.setStageProcess(sh.pid!);
    let stdout = '';
    sh.stdout.on('data', (d) => (stdout += d));
    sh.stdin.end('go\n');
    await new Promise((resolve) => sh.on('close', resolve));
    expect(lastJsonLine(stdout)).toEqual({ ok: true, token: GCP.values.accessToken, project: 'proj-1' });
  });

  it('refuses a process that is not a descendant of the stage process (google-auth-library and raw HTTP)', async () => {
    const env = deliveryEnv();
    const stageProcess = spawn('/bin/sleep', ['30']);
    try {
      endpoints.setStageProcess(stageProcess.pid!);
      const r = await runChild(process.execPath, ['-e', GOOGLE_AUTH_SCRIPT], {
        env: isolatedEnv(home, { ...pick(env, 'GCE_'), GOOGLE_CLOUD_PROJECT: 'proj-1' }),
      });
      const out = lastJsonLine(r.stdout);
      expect(out.ok).toBe(false);
      expect(r.stdout + r.stderr).not.toContain(GCP.values.accessToken);

      const raw = await get('/computeMetadata/v1/instance/service-accounts/default/token', { 'metadata-flavor': 'Google' });
      expect(raw.status).toBe(403);
      expect(raw.headers['metadata-flavor']).toBe('Google');
      expect(raw.body).not.toContain(GCP.values.accessToken);
      expect(refusals.some((e) => e.endpoint === 'gce' && e.code === 'NotStageProcess')).toBe(true);
    } finally {
      stageProcess.kill('SIGKILL');
    }
  });

  it('serves the token, email and project to the stage process itself, always with Metadata-Flavor', async () => {
    endpoints.setStageProcess(process.pid); // this test process plays the stage command
    const base = '/computeMetadata/v1/instance/service-accounts/default';
    const token = await get(`${base}/token?scopes=x`, { 'metadata-flavor': 'Google' });
    expect(token.status).toBe(200);
    const body = JSON.parse(token.body);
    expect(body).toEqual({ access_token: GCP.values.accessToken, expires_in: expect.any(Number), token_type: 'Bearer' });
    expect(body.expires_in).toBeGreaterThan(3500);
    expect((await get(`${base}/email`, { 'metadata-flavor': 'Google' })).body).toBe('deployer@proj-1.iam.gserviceaccount.com');
    expect((await get('/computeMetadata/v1/project/project-id', { 'metadata-flavor': 'Google' })).body).toBe('proj-1');
    const ping = await get('/computeMetadata/v1/instance', { 'metadata-flavor': 'Google' });
    expect(ping.status).toBe(200);

    const noFlavor = await get(`${base}/token`, {});
    const forwarded = await get(`${base}/token`, { 'metadata-flavor': 'Google', 'x-forwarded-for': '10.0.0.1' });
    const unknown = await get('/computeMetadata/v1/instance/zone', { 'metadata-flavor': 'Google' });
    expect([noFlavor.status, forwarded.status, unknown.status]).toEqual([403, 403, 404]);
    for (const r of [token, ping, noFlavor, forwarded, unknown]) expect(r.headers['metadata-flavor']).toBe('Google');
    for (const r of [noFlavor, forwarded, unknown]) expect(r.body).not.toContain(GCP.values.accessToken);

    stageState = { state: 'open', installPhaseOpen: true };
    const duringInstall = await get(`${base}/token`, { 'metadata-flavor': 'Google' });
    expect(duringInstall.status).toBe(403);
    expect(duringInstall.headers['metadata-flavor']).toBe('Google');
  });

  it('serves a refreshed token once a heartbeat brought it (replaced by name)', async () => {
    endpoints.setStageProcess(process.pid);
    const path = '/computeMetadata/v1/instance/service-accounts/default/token';
    expect(JSON.parse((await get(path, { 'metadata-flavor': 'Google' })).body).access_token).toBe(GCP.values.accessToken);
    endpoints.updateCredentials([{ ...GCP, values: { accessToken: 'ya29.refreshed-token-value' } }]);
    expect(JSON.parse((await get(path, { 'metadata-flavor': 'Google' })).body).access_token).toBe('ya29.refreshed-token-value');
  });

  it('fails closed when /proc cannot tell the caller, unless --gce-allow-any-local', async () => {
    await endpoints.close();
    const noProc = mkdtempSync(join(tmpdir(), 'sg-noproc-'));
    try {
      endpoints = await startLocalCredentialEndpoints({
        credentials: [GCP], gate: createStageGate({ getStage: async () => stageState }), procRoot: noProc,
      });
      endpoints.setStageProcess(process.pid);
      expect((await get('/computeMetadata/v1/instance/service-accounts/default/token', { 'metadata-flavor': 'Google' })).status).toBe(403);
      await endpoints.close();
      endpoints = await startLocalCredentialEndpoints({
        credentials: [GCP], gate: createStageGate({ getStage: async () => stageState }), procRoot: noProc, gceAllowAnyLocal: true,
      });
      expect((await get('/computeMetadata/v1/instance/service-accounts/default/token', { 'metadata-flavor': 'Google' })).status).toBe(200);
    } finally {
      rmSync(noProc, { recursive: true, force: true });
    }
  });
});

describe('secret files', () => {
  it('writes 0600 files under STAGEGATE_SECRETS_DIR and removes them all', () => {
    const env = deliveryEnv();
    const dir = env.STAGEGATE_SECRETS_DIR!;
    expect(readFileSync(join(dir, 'db', 'password'), 'utf8')).toBe(DB.values.password);
    expect(statSync(join(dir, 'db', 'password')).mode & 0o777).toBe(0o600);
    expect(Object.values(env).join('\n')).not.toContain(DB.values.password);
    files.remove();
    expect(existsSync(files.dir)).toBe(false);
  });

  it('env delivery names what it exposes', () => {
    const { env, exposed } = buildStageEnv({ baseEnv: { AWS_PROFILE: 'x' }, mode: 'env', credentials: [AWS, GCP, DB] });
    expect(env.AWS_SECRET_ACCESS_KEY).toBe(AWS.values.secretAccessKey);
    expect(env.AWS_PROFILE).toBeUndefined();
    expect(env.STAGEGATE_SECRET_DB_PASSWORD).toBe(DB.values.password);
    expect(env.CLOUDSDK_AUTH_ACCESS_TOKEN).toBe(GCP.values.accessToken);
    expect([...exposed].sort()).toEqual(
      ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'CLOUDSDK_AUTH_ACCESS_TOKEN', 'GOOGLE_OAUTH_ACCESS_TOKEN', 'STAGEGATE_SECRET_DB_PASSWORD', 'STAGEGATE_SECRET_DB_USERNAME'].sort(),
    );
  });
});

function pick(env: Record<string, string>, prefix: string): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith(prefix)));
}

describe('Vault proxy', () => {
  const VAULT_SCRIPT = `
const vault = require('node-vault')({ apiVersion: 'v1' });
Promise.all([vault.tokenLookupSelf(), vault.read('secret/data/app')]).then(
  ([self, kv]) => console.log(JSON.stringify({ ok: true, policies: self.data.policies, password: kv.data.data.password })),
  (e) => console.log(JSON.stringify({ ok: false, status: e.response && e.response.statusCode })),
);`;

  it('lets the real node-vault client use the stage token through the proxy, without the token in the env', async () => {
    const fake = await startFakeVault({ namespaces: ['team-a'], policies: { app: { 'secret/data/app': ['read'] } } });
    try {
      fake.seedKv('app', { password: 'kv-password-value-1' }, { namespace: 'team-a' });
      const { token } = fake.createToken({ policies: ['app'], namespace: 'team-a' });
      const VAULT: Credential = {
        name: 'vault', provider: 'static', kind: 'vault-token', expiresAt: expires, revocation: 'native',
        values: { token }, meta: { vaultAddress: fake.url, vaultNamespace: 'team-a' },
      };
      await endpoints.close();
      endpoints = await startLocalCredentialEndpoints({
        credentials: [VAULT], gate: createStageGate({ getStage: async () => stageState, cacheMs: 0 }), vaultProxy: true,
        onRefused: (e) => refusals.push(e),
      });
      const { env, exposed } = buildStageEnv({ baseEnv: { VAULT_TOKEN: 'old' }, mode: 'endpoint', credentials: [VAULT], endpoints, files });
      expect(exposed).toEqual([]);
      expect(env.VAULT_ADDR).toBe(endpoints.origin);
      expect(env.VAULT_TOKEN).toBe(endpoints.vaultProxyToken);
      expect(Object.values(env).join('\n')).not.toContain(token);

      const vaultEnv = { VAULT_ADDR: env.VAULT_ADDR!, VAULT_TOKEN: env.VAULT_TOKEN! };
      const ok = await runChild(process.execPath, ['-e', VAULT_SCRIPT], { env: isolatedEnv(home, vaultEnv) });
      expect(lastJsonLine(ok.stdout)).toEqual({ ok: true, policies: expect.arrayContaining(['app']), password: 'kv-password-value-1' });

      // The real token is no good at the proxy, and a wrong local token is refused.
      for (const t of [token, 'sgl.guess']) {
        const r = await runChild(process.execPath, ['-e', VAULT_SCRIPT], { env: isolatedEnv(home, { ...vaultEnv, VAULT_TOKEN: t }) });
        expect(lastJsonLine(r.stdout)).toEqual({ ok: false, status: 403 });
      }
      stageState = { state: 'open', installPhaseOpen: true };
      const install = await runChild(process.execPath, ['-e', VAULT_SCRIPT], { env: isolatedEnv(home, vaultEnv) });
      expect(lastJsonLine(install.stdout)).toEqual({ ok: false, status: 403 });
      // Two requests per run (lookup-self and the KV read).
      expect(refusals.map((e) => e.code)).toEqual(['InvalidToken', 'InvalidToken', 'InvalidToken', 'InvalidToken', 'InstallPhaseOpen', 'InstallPhaseOpen']);
    } finally {
      await fake.close();
    }
  });
});
