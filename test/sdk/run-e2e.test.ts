/**
 * End to end: `node dist/sdk/cli/main.js run …` against the real broker (in process, real
 * HTTP, dev provider, fake OIDC issuer). The stage command uses the REAL AWS SDK chain and
 * google-auth-library. Needs `npm run build` first (the CLI runs from dist/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, call, startTestBroker, waitFor, type TestBroker } from '../harness/broker';
import { expectNoLeaks } from '../harness/secrets';
import { REPO_ROOT, isolatedEnv } from './run-child';

jest.setTimeout(60_000);

let broker: TestBroker;
let dir: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker?.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-e2e-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Stage command: takes every credential the way a real tool would and records what it got. */
const STAGE_SCRIPT = `
const fs = require('fs');
const { defaultProvider } = require('@aws-sdk/credential-provider-node');
const { GoogleAuth } = require('google-auth-library');
(async () => {
  const out = { env: Object.keys(process.env).filter((k) => /^(AWS|GCE|GOOGLE|CLOUDSDK|VAULT|STAGEGATE)_/.test(k)).sort() };
  try { const c = await defaultProvider({ maxRetries: 1 })(); out.aws = { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken }; } catch (e) { out.awsError = e.name; }
  try { out.gcp = await new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] }).getAccessToken(); } catch (e) { out.gcpError = e.name; }
  const sd = process.env.STAGEGATE_SECRETS_DIR;
  if (sd) out.db = { username: fs.readFileSync(sd + '/db/username', 'utf8'), password: fs.readFileSync(sd + '/db/password', 'utf8') };
  out.awsUrl = process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  out.awsTokenFile = process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  if (out.awsTokenFile) out.awsToken = fs.readFileSync(out.awsTokenFile, 'utf8');
  out.secretsDir = sd;
  out.gceHost = process.env.GCE_METADATA_HOST;
  fs.writeFileSync(process.env.RESULT_FILE, JSON.stringify(out));
  if (process.env.THEN_SLEEP) setTimeout(() => {}, Number(process.env.THEN_SLEEP));
})();
`;

interface CliRun {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** Resolves when the CLI process itself exited (its stdio may stay open in orphans). */
  readonly exited: Promise<void>;
  stderr(): string;
}

function startCli(args: string[], env: Record<string, string>): CliRun {
  const child = spawn(process.execPath, [CLI, 'run', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, done, exited, stderr: () => stderr };
}

async function cliEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return isolatedEnv(dir, {
    STAGEGATE_BROKER_URL: broker.url,
    STAGEGATE_IDENTITY_TOKEN: await broker.mintToken(),
    RESULT_FILE: join(dir, 'result.json'),
    TMPDIR: dir, // a SIGKILLed CLI leaves its temp dir behind: keep it inside ours
    ...extra,
  });
}

async function devState(value: string): Promise<string> {
  const r = await call(broker.url, 'POST', '/v1/dev/check', { body: { value } });
  return (r.body as { state: string }).state;
}

function readResult(): Record<string, any> {
  return JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as Record<string, any>;
}

describe('stagegate run (end to end, real broker)', () => {
  it('delivers aws, gcp and secret credentials through endpoints, revokes them at exit, and leaks nothing', async () => {
    const run = startCli(['--stage', 'deploy', '--', process.execPath, '-e', STAGE_SCRIPT], await cliEnv());
    const r = await run.done;
    expect(r.code).toBe(0);
    const got = readResult();
    expect(got.awsError).toBeUndefined();
    expect(got.gcpError).toBeUndefined();
    expect(got.aws.accessKeyId).toMatch(/^ASIA/);
    expect(typeof got.gcp).toBe('string');
    expect(got.db.password).toMatch(/demo-not-real/);
    // Endpoint delivery: no raw credential variable in the stage's environment.
    expect(got.env).not.toContain('AWS_SECRET_ACCESS_KEY');
    expect(got.env).not.toContain('CLOUDSDK_AUTH_ACCESS_TOKEN');
    expect(got.env).toEqual(expect.arrayContaining(['AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', 'GCE_METADATA_HOST', 'STAGEGATE_SECRETS_DIR']));

    const secrets = [got.aws.accessKeyId, got.aws.secretAccessKey, got.aws.sessionToken, got.gcp, got.db.username, got.db.password, got.awsToken];
    for (const v of [got.aws.secretAccessKey, got.gcp, got.db.password]) expect(await devState(v)).toBe('revoked');
    expectNoLeaks(r.stdout + r.stderr, secrets, 'CLI output');
    expectNoLeaks(broker.log.text(), secrets, 'broker log');
    expect(r.stderr).toMatch(/stagegate: stage deploy opened/);
    expect(r.stderr).toMatch(/stagegate: +revoked deployer \(dev\) by \S+/);
    expect(r.stderr).toMatch(/revoked gcp \(dev\)/);
    expect(r.stderr).toMatch(/revoked db \(dev\)/);

    // After close: the endpoint no longer listens, temp files are gone.
    await expect(fetch(got.awsUrl, { headers: { authorization: got.awsToken } })).rejects.toThrow();
    await expect(fetch(`http://${got.gceHost}/computeMetadata/v1/instance`, { headers: { 'metadata-flavor': 'Google' } })).rejects.toThrow();
    expect(existsSync(got.awsTokenFile)).toBe(false);
    expect(existsSync(got.secretsDir)).toBe(false);
  });

  it('a [default] profile, credential_process or AWS_PROFILE on the runner cannot replace the stage\'s AWS credentials', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(join(dir, '.aws'), { recursive: true });
    writeFileSync(join(dir, '.aws', 'credentials'), '[default]\naws_access_key_id = AKIARUNNERFILE00000\naws_secret_access_key = runner-file-secret-value\n[ci]\naws_access_key_id = AKIARUNNERPROFILE00\naws_secret_access_key = runner-profile-secret\n');
    writeFileSync(join(dir, '.aws', 'config'), `[default]\ncredential_process = ${process.execPath} -e "console.log(JSON.stringify({Version:1,AccessKeyId:'AKIAPROCESS00000000',SecretAccessKey:'x'}))"\n`);
    const env = await cliEnv({ AWS_PROFILE: 'ci', AWS_SHARED_CREDENTIALS_FILE: join(dir, '.aws', 'credentials'), AWS_CONFIG_FILE: join(dir, '.aws', 'config') });
    const r = await startCli(['--stage', 'deploy', '--', process.execPath, '-e', STAGE_SCRIPT], env).done;
    expect(r.code).toBe(0);
    const got = readResult();
    expect(got.awsError).toBeUndefined();
    expect(got.aws.accessKeyId).toMatch(/^ASIADEMO/);
    // and the same runner without stagegate does pick the file: the setup is real
    const plain = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, ['-e', "require('@aws-sdk/credential-provider-node').defaultProvider()().then((x) => console.log(x.accessKeyId), (e) => console.log(e.name))"], { cwd: REPO_ROOT, env: { ...env, AWS_PROFILE: '' } });
      let out = '';
      c.stdout!.on('data', (d) => (out += d));
      c.on('close', () => resolve(out.trim()));
    });
    expect(plain).toBe('AKIARUNNERFILE00000');
  });

  it('passes the exit code through and closes the stage with it', async () => {
    const r = await startCli(['--stage', 'publish', '--json', '--', process.execPath, '-e', 'process.exit(7)'], await cliEnv()).done;
    expect(r.code).toBe(7);
    const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(events.map((e) => e.stagegate)).toEqual(['stage.opened', 'stage.closed']);
    expect(events[1]).toMatchObject({ state: 'closed', exit: { code: 7 }, revoked: [{ name: 'npm', provider: 'dev' }] });
  });

  it('re-raises the signal the command died of', async () => {
    const r = await startCli(['--stage', 'publish', '--', '/bin/sh', '-c', 'kill -TERM $$'], await cliEnv()).done;
    expect(r.signal).toBe('SIGTERM');
    expect(r.stderr).toMatch(/after the command ended with signal SIGTERM/);
  });

  it('on SIGTERM to the CLI: forwards it, waits for the command, closes the stage', async () => {
    const run = startCli(['--stage', 'deploy', '--', process.execPath, '-e', STAGE_SCRIPT], await cliEnv({ THEN_SLEEP: '30000' }));
    await waitFor(() => existsSync(join(dir, 'result.json')), 15_000, 'the stage command to get its credentials');
    const got = readResult();
    expect(await devState(got.aws.secretAccessKey)).toBe('active');
    // While the stage runs, a process outside its tree (this test) gets nothing.
    const gce = await fetch(`http://${got.gceHost}/computeMetadata/v1/instance/service-accounts/default/token`, { headers: { 'metadata-flavor': 'Google' } });
    expect(gce.status).toBe(403);
    expect(gce.headers.get('metadata-flavor')).toBe('Google');
    expect((await fetch(got.awsUrl)).status).toBe(401);
    expect((await fetch(got.awsUrl, { headers: { authorization: 'guess' } })).status).toBe(403);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.signal).toBe('SIGTERM');
    expect(await devState(got.aws.secretAccessKey)).toBe('revoked');
    expect(r.stderr).toMatch(/revoked deployer/);
    expect(r.stderr).toMatch(/refused a request to the gce endpoint: NotStageProcess/);
    expect(r.stderr).toMatch(/refused a request to the aws endpoint: MissingToken/);
  });

  it('keeps the stage open by heartbeat, and when the CLI is SIGKILLed the broker revokes after the heartbeat window', async () => {
    // publish: heartbeat window 2 s. The command outlives several windows.
    const script = `require('fs').writeFileSync(process.env.RESULT_FILE, require('fs').readFileSync(process.env.STAGEGATE_SECRETS_DIR + '/npm/token', 'utf8')); setTimeout(() => {}, 30000);`;
    const run = startCli(['--stage', 'publish', '--', process.execPath, '-e', script], await cliEnv());
    let stagePid: number | undefined;
    try {
      await waitFor(() => existsSync(join(dir, 'result.json')), 15_000, 'the npm token');
      const token = readFileSync(join(dir, 'result.json'), 'utf8');
      await new Promise((r) => setTimeout(r, 4500));
      expect(await devState(token)).toBe('active'); // heartbeats kept it alive past 2 windows
      stagePid = childPidsOf(run.child.pid!)[0];
      run.child.kill('SIGKILL');
      await run.exited;
      await waitFor(async () => (await devState(token)) === 'revoked', 10_000, 'the broker to reap the stage');
    } finally {
      if (stagePid) {
        try {
          process.kill(stagePid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('--deliver env puts values in the environment and names (not shows) them in a warning', async () => {
    const script = `require('fs').writeFileSync(process.env.RESULT_FILE, JSON.stringify({ k: process.env.AWS_SECRET_ACCESS_KEY, p: process.env.STAGEGATE_SECRET_DB_PASSWORD, g: process.env.CLOUDSDK_AUTH_ACCESS_TOKEN }))`;
    const r = await startCli(['--stage', 'deploy', '--deliver', 'env', '--', process.execPath, '-e', script], await cliEnv()).done;
    expect(r.code).toBe(0);
    const got = readResult();
    expect(got.k).toBeTruthy();
    expect(r.stderr).toMatch(/WARNING: secret values are in the environment .*AWS_SECRET_ACCESS_KEY.*STAGEGATE_SECRET_DB_PASSWORD/);
    expectNoLeaks(r.stdout + r.stderr, [got.k, got.p, got.g], 'CLI output');
    expect(await devState(got.k)).toBe('revoked');
  });

  it('exits 125 with the coded error when the stage cannot be opened, and 127 when CMD is missing', async () => {
    const denied = await startCli(['--stage', 'no-such-stage', '--', 'true'], await cliEnv()).done;
    expect(denied.code).toBe(125);
    expect(denied.stderr).toMatch(/stagegate: error [A-Z_]+: /);
    const env = await cliEnv();
    const badToken = await startCli(['--stage', 'deploy', '--', 'true'], { ...env, STAGEGATE_IDENTITY_TOKEN: 'not-a-jwt-secret-value' }).done;
    expect(badToken.code).toBe(125);
    expect(badToken.stderr).toMatch(/error UNAUTHENTICATED/);
    expect(badToken.stderr).not.toContain('not-a-jwt-secret-value');
    const missing = await startCli(['--stage', 'publish', '--', '/nonexistent/cmd'], await cliEnv()).done;
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/revoked npm/);
  });
});

/** Direct children of a pid (from /proc), to clean up after a SIGKILLed CLI. */
function childPidsOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of require('node:fs').readdirSync('/proc') as string[]) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}
