/**
 * The flagship proof (DESIGN.md guarantee 3, "nothing during install"), end to end with
 * real processes: the built `stagegate` CLI, a real broker (real HTTP, SQLite store, dev
 * provider, a fake OIDC issuer), real npm 11 (offline), and a dependency whose
 * `postinstall` really attacks (test/fixtures/poisoned-package/steal.js): (a) environment,
 * (b) the AWS container-credentials / GCE metadata endpoints, (c) minting an identity
 * token through ACTIONS_ID_TOKEN_REQUEST_URL and opening a stage at the broker, (d) files
 * left around, (e) its ancestors' /proc/PID/environ, (f) a double-forked setsid daemon
 * that waits for the install to end and attacks again.
 *
 * The CI job is simulated the way GitHub Actions sets one up: long-lived secrets in the
 * environment, an ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN pair served by a fake endpoint that
 * mints VALID identity tokens of this very build, a credential endpoint for the job's own
 * role, STAGEGATE_BROKER_URL, and files an earlier step left on disk — among them a valid
 * identity token of the build. Secrets are random per run, so a hit can only come from it.
 *
 * Every broker call of the CLI and of the attacker goes through a recording proxy, which
 * also looks at the process table at the instant `stagegate install` asks to close the
 * install phase: the ordering "every process of the install is dead, then the lock is
 * released" is observed, not assumed.
 *
 * Needs `npm run build` first (the CLI runs from dist/). Linux only (the claims rest on
 * /proc, cgroups and PID namespaces); elsewhere the suite is skipped.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, REPO_ROOT, buildClaims, call, startTestBroker, waitFor, type TestBroker } from '../harness/broker';
import { listenOnLoopback, portOf } from '../harness/loopback-server';
import { expectNoLeaks } from '../harness/secrets';
import { jsonEvents, runCli, startCli, type CliOutcome } from './cli-process';
import { startFakeGithubActionsOidc, type FakeGithubActionsOidc } from './fake-github-actions-oidc';
import { killProcessesMentioning, liveProcessesMentioning, liveProcessesWorkingIn, watchProcesses } from '../harness/process-scan';
import { startRecordingProxy, type RecordingProxy } from './recording-proxy';

jest.setTimeout(180_000);

const FIXTURE = join(__dirname, '..', 'fixtures', 'poisoned-package');
const FIXTURE_VERSION = (JSON.parse(readFileSync(join(FIXTURE, 'package.json'), 'utf8')) as { version: string }).version;
/** `--install-links`: copy the local folder (npm would otherwise symlink it, and a registry package is a copy too). */
const NPM_FLAGS = ['--install-links', '--no-audit', '--no-fund', '--offline', '--loglevel=error'];
const CHANNELS = ['env', 'aws-endpoint', 'gce-metadata', 'loopback-scan', 'oidc', 'files', 'ancestors', 'broker', 'daemon'];
const linux = process.platform === 'linux';

interface ReportLine {
  phase: 'postinstall' | 'daemon';
  pid: number;
  channel: string;
  obtained: unknown[];
  detail: Record<string, any>;
}

interface BrokerTry {
  url: string;
  withToken: boolean;
  status: number;
  code?: string;
}

const secret = (label: string): string => `${label}-${randomBytes(12).toString('hex')}`;
/** What the job holds in its environment and behind its own credential endpoint. */
const S = {
  awsSecretKey: secret('awssecret'),
  awsEndpointToken: secret('awsendpointtoken'),
  endpointSecretKey: secret('endpointsecret'),
  npmToken: secret('npm'),
  githubToken: secret('ghs'),
  runtimeToken: secret('actionsruntime'),
};
/** What an earlier step left on disk (channel d: readable, see the threat model). */
const F = {
  npmrcToken: secret('npmrcfile'),
  awsFileSecret: secret('awsfilesecret'),
};

let broker: TestBroker;
let awsJobEndpoint: Server;
let root: string;
let caseNo = 0;
const opened: Array<{ close(): Promise<void> }> = [];


beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  root = mkdtempSync(join(tmpdir(), 'sg-poisoned-e2e-'));
  broker = await startTestBroker();
  // The job's own role endpoint (AWS container-credentials protocol, as EKS Pod Identity /
  // ECS serve it): the raw token in Authorization, else 401.
  awsJobEndpoint = await listenOnLoopback((req, res) => {
    if (req.headers.authorization !== S.awsEndpointToken) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"Code":"Unauthorized","Message":"bad token"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ AccessKeyId: 'ASIAJOBROLE', SecretAccessKey: S.endpointSecretKey, Token: 'job-session', Expiration: '2030-01-01T00:00:00Z' }));
  });
});

afterAll(async () => {
  // Whatever a failed assertion (or the positive control's free daemon) left running.
  if (root) killProcessesMentioning(root);
  for (const o of opened) await o.close();
  await new Promise((r) => awsJobEndpoint?.close(r));
  await broker?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

interface JobCase {
  readonly dir: string;
  readonly project: string;
  readonly fixture: string;
  readonly reportPath: string;
  /** The installed copy of the package: every process of the attack mentions it. */
  readonly installedPath: string;
  readonly claims: Record<string, unknown>;
  /** The build key the broker derives: `{repository}/{run_id}/{run_attempt}`. */
  readonly build: string;
  readonly gh: FakeGithubActionsOidc;
  readonly proxy: RecordingProxy;
  /** SECRET: a valid identity token of this build, left on disk by an earlier step. */
  readonly leftoverToken: string;
  readonly env: Record<string, string>;
  /** Pid of the `stagegate install` process while it runs (it works in the project too). */
  installCliPid?: number;
}

/**
 * A fresh CI job: a new build, its OIDC request endpoint, a proxy in front of the broker,
 * the workspace, a copy of the fixture with its attack config, and the files an earlier
 * step left. Everything planted sits ≥ 3 levels below /tmp, out of reach of other suites'
 * copies of the fixture (they walk /tmp 2 levels deep).
 */
async function newJob(): Promise<JobCase> {
  caseNo += 1;
  const dir = join(root, `job-${caseNo}`);
  const home = join(dir, 'home');
  const project = join(dir, 'work', 'project');
  const runnerTemp = join(dir, 'work', 'runner-temp');
  const fixture = join(dir, 'poisoned-package');
  for (const d of [join(home, '.aws'), project, runnerTemp]) mkdirSync(d, { recursive: true });
  cpSync(FIXTURE, fixture, { recursive: true });
  rmSync(join(fixture, 'attack-config.json'), { force: true });

  const claims = buildClaims();
  const build = `${claims.repository as string}/${claims.run_id as string}/${claims.run_attempt as string}`;
  const gh = await startFakeGithubActionsOidc(broker.issuer, claims);
  const installedPath = join(project, 'node_modules', 'poisoned-package');
  let installStageId: string | undefined;
  const holder: { job?: JobCase } = {};
  const proxy = await startRecordingProxy(broker.url, {
    // At the instant the close of the install phase arrives: is any process of the
    // install still alive — npm, a lifecycle shell, the postinstall, the daemon (they all
    // work in the project directory; the daemon's command line also names the package)?
    beforeForward: ({ method, path }) => {
      installStageId ??= proxy.exchanges.find((e) => e.phase === 'install' && e.stageId)?.stageId;
      if (method === 'DELETE' && installStageId !== undefined && path === `/v1/stages/${installStageId}`) {
        const cli = holder.job?.installCliPid;
        const live = new Set([...liveProcessesWorkingIn(project, cli === undefined ? [] : [cli]), ...liveProcessesMentioning(installedPath)]);
        return { installCloseSeen: true, liveInstallProcesses: [...live] };
      }
      return undefined;
    },
  });
  opened.push(gh, proxy);

  const leftoverToken = await broker.issuer.sign(claims, { expiresIn: 600 });
  writeFileSync(join(runnerTemp, 'stagegate-id-token'), `${leftoverToken}\n`, { mode: 0o600 });
  writeFileSync(join(home, '.npmrc'), `//registry.npmjs.org/:_authToken=${F.npmrcToken}\n`, { mode: 0o600 });
  // A [default] profile: loot for channel (d), and a trap for the later deploy stage —
  // the AWS default chain reads this file before the container endpoint, so
  // `stagegate run` points the chain at an empty profile file (the deploy must still get
  // the stage's credentials, asserted below).
  writeFileSync(join(home, '.aws', 'credentials'), `[default]\naws_access_key_id = AKIAFILEKEY\naws_secret_access_key = ${F.awsFileSecret}\n`, { mode: 0o600 });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'victim-app', version: '1.0.0', private: true }));

  const reportPath = join(dir, 'report.jsonl');
  writeFileSync(
    join(fixture, 'attack-config.json'),
    JSON.stringify({
      reportPath,
      // Every port this test opened: a real attacker scans loopback.
      probePorts: [portOf(awsJobEndpoint), gh.port, proxy.port, Number(new URL(broker.url).port), Number(new URL(broker.issuer.issuer).port)],
      brokerPorts: [proxy.port, Number(new URL(broker.url).port)],
      scanDirs: [dir],
      daemonMaxWaitMs: 15_000,
      // Try every JWT found on disk at the broker — the leftover identity token among them.
      tryFileTokens: true,
    }),
  );

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_REPOSITORY: claims.repository as string,
    GITHUB_RUN_ID: claims.run_id as string,
    RUNNER_TEMP: runnerTemp,
    // Long-lived job secrets, the way many pipelines still hold them.
    AWS_ACCESS_KEY_ID: 'AKIAJOBKEY',
    AWS_SECRET_ACCESS_KEY: S.awsSecretKey,
    AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${portOf(awsJobEndpoint)}/creds`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN: S.awsEndpointToken,
    NPM_TOKEN: S.npmToken,
    GITHUB_TOKEN: S.githubToken,
    ACTIONS_RUNTIME_TOKEN: S.runtimeToken,
    // Every step of a job with `permissions: id-token: write` sees these two.
    ...gh.env(),
    STAGEGATE_BROKER_URL: proxy.url,
  };
  holder.job = { dir, project, fixture, reportPath, installedPath, claims, build, gh, proxy, leftoverToken, env };
  return holder.job;
}

function readReport(path: string): ReportLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ReportLine);
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function auditEvents(): Array<{ type: string; stageId: string | null; data: Record<string, any> }> {
  const r = spawnSync(process.execPath, [CLI, 'audit', 'export', '--db', broker.dbPath], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`audit export failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; stageId: string | null; data: Record<string, any> });
}

async function devState(value: string): Promise<string> {
  const r = await call(broker.url, 'POST', '/v1/dev/check', { body: { value } });
  return (r.body as { state: string }).state;
}

/** The legitimate deploy stage: takes its AWS credentials through the real AWS SDK default chain. */
const DEPLOY_SCRIPT = `
const fs = require('fs');
const { defaultProvider } = require('@aws-sdk/credential-provider-node');
(async () => {
  const out = { env: Object.keys(process.env).filter((k) => /^(AWS|ACTIONS|STAGEGATE)_/.test(k)).sort() };
  try { const c = await defaultProvider({ maxRetries: 1 })(); out.aws = { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken }; } catch (e) { out.awsError = e.name; }
  fs.writeFileSync(process.env.DEPLOY_RESULT, JSON.stringify(out));
})();
`;

async function deploy(job: JobCase): Promise<{ out: CliOutcome; result?: Record<string, any> }> {
  const resultPath = join(job.dir, `deploy-${Date.now()}.json`);
  const out = await runCli(['run', '--json', '--stage', 'deploy', '--', process.execPath, '-e', DEPLOY_SCRIPT], {
    env: { ...job.env, DEPLOY_RESULT: resultPath },
    cwd: REPO_ROOT, // so the stage script resolves @aws-sdk/credential-provider-node
  });
  return { out, result: existsSync(resultPath) ? (JSON.parse(readFileSync(resultPath, 'utf8')) as Record<string, any>) : undefined };
}

async function stagegateInstall(job: JobCase, extraArgs: string[] = []): Promise<CliOutcome & { seen: Map<number, string> }> {
  // Watch from outside every namespace: the daemon is visible here with its real pid.
  const watch = watchProcesses(job.installedPath);
  const run = startCli(['install', '--json', '--allow-scripts', `poisoned-package@${FIXTURE_VERSION}`, ...extraArgs, '--', 'npm', 'install', ...NPM_FLAGS, job.fixture], {
    env: job.env,
    cwd: job.project,
  });
  job.installCliPid = run.child.pid;
  const out = await run.done;
  watch.stop();
  return { ...out, seen: watch.seen };
}

const jobSecretValues = (job: JobCase): string[] => [...Object.values(S), job.gh.requestToken];

/** Assertions shared by both stagegate cases: the install ran the attack, contained, and the lock held. */
async function expectContainedAttack(job: JobCase, out: CliOutcome & { seen: Map<number, string> }, kept: readonly string[] = []): Promise<{ lines: ReportLine[]; postinstall: ReportLine[] }> {
  expect({ code: out.code, timedOut: out.timedOut, stderr: out.code === 0 ? '' : out.stderr }).toEqual({ code: 0, timedOut: false, stderr: '' });
  const events = jsonEvents(out.stderr);
  const result = events.find((e) => e.stagegate === 'install.result');
  expect(result).toMatchObject({ exitCode: 0, containment: 'cgroup', pidNamespace: true, scriptsPolicy: { manager: 'npm', ranAllowed: [`poisoned-package@${FIXTURE_VERSION}`] } });
  // The daemon (and whatever else the script left) was found and killed.
  expect(result!.leftoversKilled).toBeGreaterThanOrEqual(1);
  const environment = events.find((e) => e.stagegate === 'install.environment');
  expect(environment!.removed).toEqual(
    expect.arrayContaining(['AWS_SECRET_ACCESS_KEY', 'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'NPM_TOKEN', 'GITHUB_TOKEN', 'ACTIONS_RUNTIME_TOKEN', 'STAGEGATE_BROKER_URL']),
  );

  const lines = readReport(job.reportPath);
  const postinstall = lines.filter((l) => l.phase === 'postinstall');
  // The attack really ran, through every channel.
  expect(postinstall.map((l) => l.channel)).toEqual(expect.arrayContaining(['start', ...CHANNELS]));
  expect(lines.filter((l) => l.channel === 'crash')).toEqual([]);

  // (e) its ancestors' environments: the PID namespace hides the CLI's and the job's;
  // the install's own processes (npm, the lifecycle shell) hold only the scrubbed
  // environment, so at most what --keep let through is there.
  const ancestors = postinstall.find((l) => l.channel === 'ancestors')!;
  expect((ancestors.obtained as Array<{ name: string }>).filter((o) => !kept.includes(o.name))).toEqual([]);
  // (b) the job's AWS endpoint: its URL and token were scrubbed; the scan without a token gets 401s.
  expect(postinstall.find((l) => l.channel === 'aws-endpoint')!.obtained).toEqual([]);
  expect(postinstall.find((l) => l.channel === 'gce-metadata')!.obtained).toEqual([]);
  expect(postinstall.find((l) => l.channel === 'loopback-scan')!.obtained).toEqual([]);

  // The lock: the close of the install phase reached the broker only once nothing of the
  // install was alive — the daemon included.
  const closes = job.proxy.exchanges.filter((e) => (e.observed as { installCloseSeen?: boolean } | undefined)?.installCloseSeen);
  expect(closes.length).toBeGreaterThanOrEqual(1);
  expect(closes[0]!.status).toBe(200);
  for (const close of closes) expect((close.observed as { liveInstallProcesses: number[] }).liveInstallProcesses).toEqual([]);
  // ...and it never finished its second round, and stays silent from now on.
  // The daemon was really up during the install (its own "daemon-alive" line: the
  // postinstall waits for it before exiting), waiting for the install to end...
  expect(postinstall.find((l) => l.channel === 'daemon')?.detail.started).toBe(true);
  expect(lines.some((l) => l.phase === 'daemon' && l.channel === 'daemon-alive')).toBe(true);
  // (From outside, the watcher sees the attack's processes with their real pids — the
  // daemon too when the machine is not too loaded to poll within its short life.)
  expect([...out.seen.values()].some((cmdline) => cmdline.includes('steal.js'))).toBe(true);
  await new Promise((r) => setTimeout(r, 2000));
  const after = readReport(job.reportPath);
  expect(after.filter((l) => l.channel === 'daemon-done')).toEqual([]);
  expect(after.length).toBe(lines.length);
  expect(liveProcessesMentioning(job.installedPath)).toEqual([]);
  // Whatever the daemon managed before it died was tried while the lock held.
  for (const l of lines.filter((x) => x.phase === 'daemon' && x.channel === 'broker')) {
    expect((l.detail.tries as BrokerTry[]).every((t) => t.status !== 201)).toBe(true);
  }

  // No value of the job's environment or endpoint secrets anywhere in the attacker's loot,
  // nor in what the CLI printed.
  const loot = readFileSync(job.reportPath, 'utf8');
  for (const [name, value] of Object.entries(S)) expect({ name, leaked: loot.includes(value) }).toEqual({ name, leaked: false });
  expectNoLeaks(out.stdout + out.stderr, [...jobSecretValues(job), ...job.gh.minted, job.leftoverToken], 'stagegate install output');
  return { lines, postinstall };
}

/** The legitimate deploy after the install: opens once, gets its credentials, revokes them at exit. */
async function expectLegitimateDeploy(job: JobCase): Promise<void> {
  const { out, result } = await deploy(job);
  expect({ code: out.code, stderr: out.code === 0 ? '' : out.stderr }).toEqual({ code: 0, stderr: '' });
  expect(result?.awsError).toBeUndefined();
  // From stagegate's endpoint, not the job's long-lived key (buildStageEnv removes those).
  expect(result!.aws.accessKeyId).toMatch(/^ASIADEMO/);
  expect(result!.env).not.toContain('AWS_SECRET_ACCESS_KEY');
  const events = jsonEvents(out.stderr);
  expect(events.find((e) => e.stagegate === 'stage.opened')).toMatchObject({ stage: 'deploy', build: job.build });
  expect(events.find((e) => e.stagegate === 'stage.closed')).toMatchObject({ state: 'closed', exit: { code: 0 } });
  // Revoked at exit.
  expect(await devState(result!.aws.secretAccessKey as string)).toBe('revoked');
  expect(await devState(result!.aws.sessionToken as string)).toBe('revoked');
  // Exactly one deploy stage was ever opened for this build: the attacker never got it.
  const deployOpens = job.proxy.exchanges.filter((e) => e.method === 'POST' && e.stage === 'deploy' && e.status === 201);
  expect(deployOpens).toHaveLength(1);
  const openedEvents = auditEvents().filter((e) => e.type === 'stage.opened' && e.data.build === job.build && e.data.stage === 'deploy');
  expect(openedEvents).toHaveLength(1);
  expectNoLeaks(out.stdout + out.stderr, [result!.aws.secretAccessKey as string, result!.aws.sessionToken as string, ...jobSecretValues(job)], 'stagegate run output');
}

(linux ? describe : describe.skip)('a poisoned dependency in a CI job (end to end)', () => {
  it('positive control: without stagegate, the postinstall steals the job secrets, mints a valid identity token, opens the deploy stage itself, and its daemon strikes again', async () => {
    const job = await newJob();
    const status = await new Promise<number | null>((resolve) => {
      const npm = spawn('npm', ['install', ...NPM_FLAGS, job.fixture], { cwd: job.project, env: job.env, stdio: 'ignore' });
      const timer = setTimeout(() => npm.kill('SIGKILL'), 90_000);
      npm.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    expect(status).toBe(0);
    const loot = readFileSync(job.reportPath, 'utf8');
    const lines = readReport(job.reportPath);
    const of = (channel: string, phase = 'postinstall') => lines.find((l) => l.channel === channel && l.phase === phase);

    // (a) environment
    for (const v of [S.awsSecretKey, S.npmToken, S.githubToken, S.runtimeToken, S.awsEndpointToken, job.gh.requestToken]) expect(loot).toContain(v);
    // (b) the job's credential endpoint
    expect(of('aws-endpoint')!.obtained).toHaveLength(1);
    expect(loot).toContain(S.endpointSecretKey);
    // (c) a VALID identity token of this build, minted through the step's OIDC request pair...
    const minted = (of('oidc')!.obtained as Array<{ token: string }>)[0]!.token;
    expect(job.gh.minted).toContain(minted);
    // ...with which it opened the build's deploy stage and walked away with its credentials.
    const tries = of('broker')!.detail.tries as BrokerTry[];
    expect(tries.some((t) => t.withToken && t.status === 201)).toBe(true);
    expect(of('broker')!.obtained.length).toBeGreaterThan(0);
    expect(loot).toMatch(/demo-secret-not-real-/);
    // (d) files
    expect(loot).toContain(F.npmrcToken);
    expect(loot).toContain(F.awsFileSecret);
    // (e) ancestors' environments (npm's own /proc/PID/environ)
    expect(of('ancestors')!.obtained.length).toBeGreaterThan(0);

    // (f) the daemon outlives npm and attacks again...
    await waitFor(() => readReport(job.reportPath).some((l) => l.channel === 'daemon-done'), 30_000, 'the daemon to finish its second round');
    const daemonEnv = readReport(job.reportPath).find((l) => l.channel === 'env' && l.phase === 'daemon');
    expect(JSON.stringify(daemonEnv!.obtained)).toContain(S.awsSecretKey);
    // ...and one stage, one issuance is what makes the theft visible: the real deploy fails loudly.
    const { out } = await deploy(job);
    expect(out.code).toBe(125);
    expect(jsonEvents(out.stderr).find((e) => e.stagegate === 'error')).toMatchObject({ code: 'STAGE_ALREADY_RAN' });
    killProcessesMentioning(job.dir);
  });

  it('under `stagegate install`, every channel is tried and none yields a credential; a leftover identity token file is read but opens nothing (INSTALL_PHASE_OPEN); the daemon is dead before the lock is released; the real deploy then gets its credentials', async () => {
    const job = await newJob();
    const out = await stagegateInstall(job);
    const { postinstall } = await expectContainedAttack(job, out);

    // (a) environment: not one credential variable, not even its name.
    const env = postinstall.find((l) => l.channel === 'env')!;
    expect(env.obtained).toEqual([]);
    for (const name of Object.keys(job.env).filter((n) => /AWS_|TOKEN|ACTIONS_|STAGEGATE_/.test(n))) expect(env.detail.names).not.toContain(name);
    // (c) the OIDC request pair was scrubbed: nothing to mint with.
    expect(postinstall.find((l) => l.channel === 'oidc')).toMatchObject({ obtained: [], detail: { reason: 'ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN not set' } });
    expect(job.gh.minted).toHaveLength(1); // the CLI's own, before the install started

    // (d) files: NOT protected. Everything left on disk was read — including a valid
    // identity token of this build (see docs/threat-model.md, Install phase).
    const files = postinstall.find((l) => l.channel === 'files')!;
    const paths = (files.obtained as Array<{ path: string }>).map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining([join(job.dir, 'home', '.npmrc'), join(job.dir, 'home', '.aws', 'credentials'), join(job.dir, 'work', 'runner-temp', 'stagegate-id-token')]));
    // ...but the token opened nothing: the broker refused it while the install ran.
    const tries = postinstall.find((l) => l.channel === 'broker')!.detail.tries as BrokerTry[];
    expect(tries.filter((t) => t.withToken && t.status === 409 && t.code === 'INSTALL_PHASE_OPEN').length).toBeGreaterThanOrEqual(1);
    expect(tries.every((t) => t.status !== 201)).toBe(true);
    expect(postinstall.find((l) => l.channel === 'broker')!.obtained).toEqual([]);

    // The broker's audit log shows the denial, tied to this build and to that token's hash.
    const denied = auditEvents().filter((e) => e.type === 'stage.denied' && e.data.code === 'INSTALL_PHASE_OPEN' && e.data.build === job.build);
    expect(denied.length).toBeGreaterThanOrEqual(1);
    expect(denied.map((e) => e.data.identitySha256)).toContain(sha256(job.leftoverToken));
    expect(denied.every((e) => e.data.stage === 'deploy' && e.data.phase === 'run')).toBe(true);
    expectNoLeaks(JSON.stringify(auditEvents()), [job.leftoverToken, ...job.gh.minted, ...jobSecretValues(job)], 'audit log');

    await expectLegitimateDeploy(job);
  });

  it('even with the scrub defeated (--keep of the OIDC request pair), the valid token the attacker mints opens nothing during the install, the daemon cannot race the real stage, and the deploy opens once', async () => {
    const job = await newJob();
    const kept = ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'];
    const out = await stagegateInstall(job, kept.flatMap((k) => ['--keep', k]));
    const { postinstall } = await expectContainedAttack(job, out, kept);

    // (c) it minted a VALID identity token of this build...
    const oidc = postinstall.find((l) => l.channel === 'oidc')!;
    const minted = (oidc.obtained as Array<{ token: string }>)[0]?.token;
    expect(minted).toBeDefined();
    expect(job.gh.minted).toContain(minted);
    expect(job.gh.minted.indexOf(minted!)).toBeGreaterThan(0); // the CLI's own came first
    // ...and the broker refused it: the install phase of that build was open.
    const tries = postinstall.find((l) => l.channel === 'broker')!.detail.tries as BrokerTry[];
    expect(tries.filter((t) => t.withToken && t.code === 'INSTALL_PHASE_OPEN').length).toBeGreaterThanOrEqual(1);
    expect(tries.every((t) => t.status !== 201)).toBe(true);
    const denied = auditEvents().filter((e) => e.type === 'stage.denied' && e.data.code === 'INSTALL_PHASE_OPEN' && e.data.build === job.build);
    expect(denied.map((e) => e.data.identitySha256)).toContain(sha256(minted!));

    // The daemon would now hold a valid token for a build whose lock is about to be
    // released; it is dead first (checked in expectContainedAttack), so the real deploy is
    // the one and only deploy of the build.
    await expectLegitimateDeploy(job);
  });
});
