/**
 * A real `npm install` of the poisoned fixture, under `runContainedInstall` and (the
 * positive control) without it. The credential services the attacker goes for are real
 * loopback HTTP servers that check what the real ones check (the AWS container endpoint
 * wants its authorization token, the OIDC request URL its bearer token, the broker an
 * identity token). Secrets are random per run, so a hit can only come from this run.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probePidNamespace, runContainedInstall, type InstallResult } from '../../sdk/install';
import { listenOnLoopback, portOf } from '../harness/loopback-server';
import { killProcessesMentioning, liveProcessesMentioning } from '../harness/process-scan';
import { buildInstallDriver } from './build-install-driver';

const FIXTURE = join(__dirname, '..', 'fixtures', 'poisoned-package');
const NPM_FLAGS = ['--no-audit', '--no-fund', '--offline', '--install-links', '--loglevel=error'];
const CHANNELS = ['env', 'aws-endpoint', 'gce-metadata', 'loopback-scan', 'oidc', 'files', 'ancestors', 'broker', 'daemon'];

interface ReportLine {
  phase: string;
  pid: number;
  channel: string;
  attempted: boolean;
  obtained: unknown[];
  detail: Record<string, unknown>;
}

const secret = (label: string): string => `${label}-${randomBytes(12).toString('hex')}`;
const S = {
  awsSecretKey: secret('awssecret'),
  awsEndpointToken: secret('awsendpointtoken'),
  endpointAccessKey: secret('ASIAENDPOINT'),
  githubToken: secret('ghs'),
  npmToken: secret('npm'),
  oidcRequestToken: secret('oidcreq'),
  mintedJwt: secret('eyJminted'),
  brokerCredential: secret('brokercred'),
};

let root: string;
let servers: Server[] = [];
let ports: { aws: number; oidc: number; broker: number };
let driver: string;


beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sg-poison-'));
  // AWS container-credentials protocol: raw token in Authorization, else 401.
  const aws = await listenOnLoopback((req, res) => {
    if (req.headers.authorization !== S.awsEndpointToken) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"Code":"Unauthorized","Message":"bad token"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ AccessKeyId: S.endpointAccessKey, SecretAccessKey: 'x', Token: 'y', Expiration: '2030-01-01T00:00:00Z' }));
  });
  // GitHub Actions OIDC request URL: Bearer request token, answers {value: jwt}.
  const oidc = await listenOnLoopback((req, res) => {
    if (req.headers.authorization !== `Bearer ${S.oidcRequestToken}`) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: S.mintedJwt }));
  });
  // A broker that would issue to the minted identity token (no install lock: that is the
  // broker's half, tested elsewhere; here we show the token never reaches it).
  const broker = await listenOnLoopback((req, res) => {
    if (req.method === 'POST' && req.url === '/v1/stages' && req.headers.authorization === `Bearer ${S.mintedJwt}`) {
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ stageId: 's1', credentials: [{ value: S.brokerCredential }] }));
      return;
    }
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"UNAUTHENTICATED","message":"no","details":{}}}');
  });
  servers = [aws, oidc, broker];
  ports = { aws: portOf(aws), oidc: portOf(oidc), broker: portOf(broker) };
  driver = buildInstallDriver(join(root, 'driver'));
});

afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  // Kill anything a failed assertion may have left (the positive control's daemon included).
  killProcessesMentioning(root);
  rmSync(root, { recursive: true, force: true });
});

/** The job environment of a CI step: secrets, OIDC request pair, broker URL. */
function jobEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    AWS_ACCESS_KEY_ID: 'AKIAJOBKEY',
    AWS_SECRET_ACCESS_KEY: S.awsSecretKey,
    AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${ports.aws}/creds`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN: S.awsEndpointToken,
    GITHUB_TOKEN: S.githubToken,
    NPM_TOKEN: S.npmToken,
    ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${ports.oidc}/token?api-version=2.0`,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: S.oidcRequestToken,
    STAGEGATE_BROKER_URL: `http://127.0.0.1:${ports.broker}`,
  };
}

let caseNo = 0;
/** A fresh project + a fresh copy of the fixture with its attack config. */
function makeProject(): { project: string; fixture: string; reportPath: string } {
  caseNo += 1;
  const dir = join(root, `case-${caseNo}`);
  const fixture = join(dir, 'poisoned-package');
  const project = join(dir, 'project');
  mkdirSync(project, { recursive: true });
  cpSync(FIXTURE, fixture, { recursive: true });
  const reportPath = join(dir, 'report.jsonl');
  writeFileSync(
    join(fixture, 'attack-config.json'),
    JSON.stringify({ reportPath, probePorts: [ports.aws, ports.oidc, ports.broker], brokerPorts: [ports.broker], scanDirs: [dir], daemonMaxWaitMs: 8000 }),
  );
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'victim', version: '1.0.0', private: true }));
  return { project, fixture, reportPath };
}

function readReport(path: string): ReportLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ReportLine);
}


async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** Run the compiled runContainedInstall in its own process, the job's secrets in its real environment. */
function runDriver(options: Record<string, unknown>, env: Record<string, string>): Promise<{ result: InstallResult; stderr: string }> {
  const resultPath = join(root, `result-${caseNo}-${Date.now()}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [driver, JSON.stringify({ stdio: ['ignore', 2, 2], ...options }), resultPath], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', () => {
      clearTimeout(timer);
      if (!existsSync(resultPath)) return reject(new Error(`driver wrote no result; stderr: ${stderr}`));
      resolve({ result: JSON.parse(readFileSync(resultPath, 'utf8')) as InstallResult, stderr });
    });
  });
}

const linux = process.platform === 'linux';

describe('npm install of the poisoned fixture', () => {
  it('positive control: without stagegate, the fixture steals through every channel, and its daemon strikes again after the install', async () => {
    const { project, fixture, reportPath } = makeProject();
    const env = jobEnv();
    // Async: the credential servers live in this process and must keep answering.
    const status = await new Promise<number | null>((resolve) => {
      const npm = spawn('npm', ['install', ...NPM_FLAGS, fixture], { cwd: project, env, stdio: 'ignore' });
      const timer = setTimeout(() => npm.kill('SIGKILL'), 60_000);
      npm.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    expect(status).toBe(0);
    const lines = readReport(reportPath);
    const of = (channel: string, phase = 'postinstall'): ReportLine | undefined => lines.find((l) => l.channel === channel && l.phase === phase);
    const text = readFileSync(reportPath, 'utf8');

    expect(of('start')).toBeDefined();
    expect((of('env')?.obtained ?? []).length).toBeGreaterThan(0);
    expect(text).toContain(S.awsSecretKey);
    expect(text).toContain(S.githubToken);
    expect(text).toContain(S.npmToken);
    expect(of('aws-endpoint')?.obtained).toHaveLength(1);
    expect(text).toContain(S.endpointAccessKey);
    expect(of('oidc')?.obtained).toEqual([{ token: S.mintedJwt }]);
    expect((of('broker')?.obtained ?? []).length).toBeGreaterThan(0);
    expect(text).toContain(S.brokerCredential);
    if (linux) expect((of('ancestors')?.obtained ?? []).length).toBeGreaterThan(0);

    // The daemon outlives npm and attacks again with the environment it inherited.
    expect(await waitFor(() => readReport(reportPath).some((l) => l.channel === 'daemon-done'), 15_000)).toBe(true);
    const daemonEnv = readReport(reportPath).find((l) => l.channel === 'env' && l.phase === 'daemon');
    expect(JSON.stringify(daemonEnv?.obtained)).toContain(S.awsSecretKey);
  });

  it('scripts are off by default: the postinstall never runs', async () => {
    const { project, fixture, reportPath } = makeProject();
    const result = await runContainedInstall({ command: 'npm', args: ['install', ...NPM_FLAGS, fixture], cwd: project, env: jobEnv(), stdio: 'ignore' });
    expect(result.exitCode).toBe(0);
    expect(existsSync(join(project, 'node_modules', 'poisoned-package', 'steal.js'))).toBe(true);
    expect(readReport(reportPath)).toEqual([]);
    expect(result.scriptsPolicy).toMatchObject({ manager: 'npm', allowed: [], ranAllowed: [] });
    expect(result.scriptsPolicy.disabledBy).toContain('--ignore-scripts');
    expect(result.removedEnv).toEqual(
      expect.arrayContaining(['AWS_SECRET_ACCESS_KEY', 'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'GITHUB_TOKEN', 'NPM_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'STAGEGATE_BROKER_URL']),
    );
    // Names only: no value of any secret in the result.
    const json = JSON.stringify(result);
    for (const v of Object.values(S)) expect(json).not.toContain(v);
  });

  it('an allow-list entry for another version runs nothing', async () => {
    const { project, fixture, reportPath } = makeProject();
    const result = await runContainedInstall({
      command: 'npm',
      args: ['install', ...NPM_FLAGS, fixture],
      cwd: project,
      env: jobEnv(),
      stdio: 'ignore',
      allowScripts: ['poisoned-package@1.0.1'],
    });
    expect(result.exitCode).toBe(0);
    expect(readReport(reportPath)).toEqual([]);
    expect(result.scriptsPolicy.ranAllowed).toEqual([]);
    expect(result.scriptsPolicy.skippedAllowed).toEqual([{ entry: 'poisoned-package@1.0.1', reason: 'not installed at this version' }]);
  });

  (linux ? it : it.skip)(
    'allow-listed, under stagegate install with the secrets in the installer\'s own environment: every channel runs and obtains nothing, and the daemon is killed',
    async () => {
      expect(probePidNamespace()).toBeDefined(); // this machine allows it; the (e) channel depends on it
      const { project, fixture, reportPath } = makeProject();
      const { result, stderr } = await runDriver(
        { command: 'npm', args: ['install', ...NPM_FLAGS, fixture], cwd: project, allowScripts: ['poisoned-package@1.0.0'] },
        jobEnv(),
      );
      expect({ exitCode: result.exitCode, stderr: result.exitCode === 0 ? '' : stderr }).toEqual({ exitCode: 0, stderr: '' });
      expect(result.scriptsPolicy.ranAllowed).toEqual(['poisoned-package@1.0.0']);
      expect(result.pidNamespace).toBe(true);
      expect(result.containment).toBe('cgroup');
      expect(result.leftoversKilled).toBeGreaterThanOrEqual(1);

      const lines = readReport(reportPath);
      const postinstall = lines.filter((l) => l.phase === 'postinstall');
      // It ran, every channel was tried...
      expect(postinstall.map((l) => l.channel)).toEqual(expect.arrayContaining(['start', ...CHANNELS]));
      // ...and came back empty-handed.
      for (const l of postinstall) {
        if (l.channel === 'files') continue; // files left on disk are out of scope: see below
        expect({ channel: l.channel, obtained: l.obtained }).toEqual({ channel: l.channel, obtained: [] });
      }
      const text = readFileSync(reportPath, 'utf8');
      for (const [name, value] of Object.entries(S)) expect({ name, leaked: text.includes(value) }).toEqual({ name, leaked: false });
      // The env it saw: no credential names at all.
      const seen = (postinstall.find((l) => l.channel === 'env')?.detail.names ?? []) as string[];
      for (const name of Object.keys(jobEnv()).filter((n) => n !== 'PATH' && n !== 'HOME')) expect(seen).not.toContain(name);
      // The broker was reachable (port scan) but only without a token.
      const tries = (postinstall.find((l) => l.channel === 'broker')?.detail.tries ?? []) as { withToken: boolean; status: number }[];
      expect(tries.length).toBeGreaterThan(0);
      expect(tries.every((t) => !t.withToken && t.status === 401)).toBe(true);

      // The daemon was started, then killed with the install: it never attacks again.
      expect(postinstall.find((l) => l.channel === 'daemon')?.detail.started).toBe(true);
      await new Promise((r) => setTimeout(r, 1500));
      expect(readReport(reportPath).filter((l) => l.phase === 'daemon' && l.channel !== 'daemon-alive')).toEqual([]);
      expect(liveProcessesMentioning(fixture)).toEqual([]);
    },
  );

  (linux ? it : it.skip)('without a PID namespace, the ancestors channel reads the installer\'s own environment (the documented limit)', async () => {
    const { project, fixture, reportPath } = makeProject();
    const { result } = await runDriver(
      { command: 'npm', args: ['install', ...NPM_FLAGS, fixture], cwd: project, allowScripts: ['poisoned-package@1.0.0'], pidNamespace: 'off' },
      jobEnv(),
    );
    expect(result.exitCode).toBe(0);
    expect(result.pidNamespace).toBe(false);
    const lines = readReport(reportPath).filter((l) => l.phase === 'postinstall');
    expect(lines.find((l) => l.channel === 'env')?.obtained).toEqual([]);
    // /proc/<installer>/environ still holds what the installer was started with.
    expect(JSON.stringify(lines.find((l) => l.channel === 'ancestors')?.obtained)).toContain(S.awsSecretKey);
    // The daemon is still killed (cgroup / marker).
    expect(result.leftoversKilled).toBeGreaterThanOrEqual(1);
    expect(liveProcessesMentioning(fixture)).toEqual([]);
  });
});
