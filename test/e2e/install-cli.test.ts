/**
 * `stagegate install` end to end: the built CLI (`dist/sdk/cli/main.js`) as a real process
 * against a real broker (in process, real HTTP, dev provider, fake OIDC issuer). Needs
 * `npm run build` first.
 *
 * What is proven here: exit codes and signals pass through; the install phase is open at
 * the broker while CMD runs (run stages get INSTALL_PHASE_OPEN) and closed with CMD's exit
 * code after it; a refused open never runs CMD; `requireInstallPhase` stages follow the
 * install's outcome; a lost install lock kills CMD; no secret value reaches the output.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, REPO_ROOT, buildClaims, call, startTestBroker, waitFor, type TestBroker } from '../harness/broker';
import { expectNoLeaks } from '../harness/secrets';
import { jsonEvents, runCli, startCli, type CliOutcome } from './cli-process';
import { killProcessesMentioning, liveProcessesMentioning } from '../harness/process-scan';

jest.setTimeout(120_000);

const ADMIN_TOKEN = `admin-${randomBytes(16).toString('hex')}`;
let broker: TestBroker;
let root: string;
let caseNo = 0;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  if (!existsSync(join(REPO_ROOT, 'dist', 'sdk', 'cli', 'install.js'))) throw new Error('dist/sdk/cli/install.js is missing: run "npm run build" first');
  root = mkdtempSync(join(tmpdir(), 'sg-install-cli-'));
  broker = await startTestBroker({
    configure: (c) => {
      // A short window, so the "lock lost" case is quick; the CLI beats every 1 s.
      c.rules[0].stages.install.heartbeat = '3s';
      c.admin = { tokenSha256: [createHash('sha256').update(ADMIN_TOKEN).digest('hex')] };
    },
  });
});

afterAll(async () => {
  killProcessesMentioning(root);
  await broker?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A fresh working directory and a fresh build (new run_id) with a token for it. */
async function newCase(claims: Record<string, unknown> = buildClaims()): Promise<{ dir: string; token: string; claims: Record<string, unknown> }> {
  caseNo += 1;
  const dir = mkdtempSync(join(root, `case-${caseNo}-`));
  return { dir, token: await broker.mintToken(claims), claims };
}

function cliEnv(dir: string, token: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    TMPDIR: dir,
    STAGEGATE_BROKER_URL: broker.url,
    STAGEGATE_IDENTITY_TOKEN: token,
    ...extra,
  };
}

function install(args: string[], dir: string, env: Record<string, string>, timeoutMs?: number): Promise<CliOutcome> {
  return runCli(['install', '--json', ...args], { env, cwd: dir, ...(timeoutMs ? { timeoutMs } : {}) });
}

function stageIdOf(out: CliOutcome): string {
  const opened = jsonEvents(out.stderr).find((e) => e.stagegate === 'install.opened');
  if (!opened) throw new Error(`no install.opened event; stderr: ${out.stderr.slice(0, 2000)}`);
  return opened.stageId as string;
}

async function stageState(id: string): Promise<Record<string, any>> {
  const r = await call(broker.url, 'GET', `/v1/stages/${id}`, { token: ADMIN_TOKEN });
  expect(r.status).toBe(200);
  return r.body as Record<string, any>;
}

describe('stagegate install (end to end, real broker)', () => {
  it('runs CMD, closes the install phase with exit code 0, and then a requireInstallPhase stage opens', async () => {
    const { dir, token } = await newCase();
    const out = await install(['--', 'sh', '-c', 'echo installing > installed.txt'], dir, cliEnv(dir, token));
    expect({ code: out.code, stderr: out.code === 0 ? '' : out.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(join(dir, 'installed.txt'), 'utf8')).toBe('installing\n');

    const events = jsonEvents(out.stderr);
    expect(events.map((e) => e.stagegate)).toEqual(['install.opened', 'install.environment', 'install.result', 'install.closed']);
    expect(events[0]).toMatchObject({ stage: 'install', phase: 'install', rule: 'web-main' });
    expect(events[1]!.removed).toEqual(['STAGEGATE_BROKER_URL', 'STAGEGATE_IDENTITY_TOKEN']);
    expect(events[2]).toMatchObject({ exitCode: 0, signal: null, scriptsPolicy: { manager: 'unknown', allowed: [] } });
    expect(['cgroup', 'marker+pgid', 'pgid']).toContain(events[2]!.containment);
    expect(events[3]).toMatchObject({ state: 'closed', exit: { code: 0 } });

    const state = await stageState(stageIdOf(out));
    expect(state).toMatchObject({ phase: 'install', state: 'closed', exitCode: 0, installPhaseOpen: false });

    const guarded = await runCli(['run', '--stage', 'guarded', '--', 'true'], { env: cliEnv(dir, await broker.mintToken(jwtClaims(token))), cwd: dir });
    expect({ code: guarded.code, stderr: guarded.code === 0 ? '' : guarded.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('passes a failing exit code through, records it at the broker, and the requireInstallPhase stage stays shut', async () => {
    const { dir, token } = await newCase();
    const out = await install(['--', 'sh', '-c', 'exit 7'], dir, cliEnv(dir, token));
    expect(out.code).toBe(7);
    expect(await stageState(stageIdOf(out))).toMatchObject({ state: 'closed', exitCode: 7 });

    const guarded = await runCli(['run', '--json', '--stage', 'guarded', '--', 'sh', '-c', 'touch ran'], { env: cliEnv(dir, await broker.mintToken(jwtClaims(token))), cwd: dir });
    expect(guarded.code).toBe(125);
    expect(jsonEvents(guarded.stderr).find((e) => e.stagegate === 'error')).toMatchObject({ code: 'INSTALL_PHASE_REQUIRED' });
    expect(existsSync(join(dir, 'ran'))).toBe(false);
  });

  it('`stagegate install -- false` exits 1 and the guarded stage stays shut', async () => {
    const { dir, token } = await newCase();
    const out = await install(['--', 'false'], dir, cliEnv(dir, token));
    expect(out.code).toBe(1);
    expect(await stageState(stageIdOf(out))).toMatchObject({ state: 'closed', exitCode: 1 });
    const guarded = await runCli(['run', '--stage', 'guarded', '--', 'true'], { env: cliEnv(dir, await broker.mintToken(jwtClaims(token))), cwd: dir });
    expect(guarded.code).toBe(125);
    expect(guarded.stderr).toMatch(/INSTALL_PHASE_REQUIRED/);
  });

  it('re-raises the signal CMD died of, and tells the broker 128 + signal', async () => {
    const { dir, token } = await newCase();
    const out = await install(['--', 'sh', '-c', 'kill -TERM $$'], dir, cliEnv(dir, token));
    expect(out.signal).toBe('SIGTERM');
    expect(jsonEvents(out.stderr).find((e) => e.stagegate === 'install.closed')).toMatchObject({ exit: { signal: 'SIGTERM' } });
    expect(await stageState(stageIdOf(out))).toMatchObject({ state: 'closed', exitCode: 143 });
  });

  it('127 when CMD does not exist; the install phase is still closed', async () => {
    const { dir, token } = await newCase();
    const out = await install(['--', join(dir, 'no-such-installer')], dir, cliEnv(dir, token));
    expect(out.code).toBe(127);
    expect(await stageState(stageIdOf(out))).toMatchObject({ state: 'closed', exitCode: 127 });
  });

  it('on SIGTERM to the CLI: forwards it, CMD and its children die, the install phase is closed with 143', async () => {
    const { dir, token } = await newCase();
    const run = startCli(['install', '--json', '--', 'sh', '-c', `sleep 60 & echo started > ${join(dir, 'started')}; wait`], { env: cliEnv(dir, token), cwd: dir });
    await waitFor(() => existsSync(join(dir, 'started')), 20_000, 'the install command to start');
    run.child.kill('SIGTERM');
    const out = await run.done;
    expect(out.timedOut).toBe(false);
    expect(out.signal === 'SIGTERM' || out.code === 143).toBe(true);
    const result = jsonEvents(out.stderr).find((e) => e.stagegate === 'install.result');
    expect(result).toMatchObject({ forwardedSignal: 'SIGTERM' });
    expect(await stageState(stageIdOf(out))).toMatchObject({ state: 'closed', exitCode: 143 });
    expect(liveProcessesMentioning(dir)).toEqual([]);
  });

  it('holds the install lock while CMD runs: a run stage of the same build is refused with INSTALL_PHASE_OPEN, then opens after', async () => {
    const { dir, token, claims } = await newCase();
    const gate = join(dir, 'gate');
    const run = startCli(['install', '--json', '--', 'sh', '-c', `touch started; while [ ! -e ${gate} ]; do sleep 0.1; done`], { env: cliEnv(dir, token), cwd: dir });
    await waitFor(() => existsSync(join(dir, 'started')), 20_000, 'the install command to start');

    const during = await runCli(['run', '--json', '--stage', 'deploy', '--', 'sh', '-c', 'touch deployed-during'], { env: cliEnv(dir, await broker.mintToken(claims)), cwd: dir });
    expect(during.code).toBe(125);
    expect(jsonEvents(during.stderr).find((e) => e.stagegate === 'error')).toMatchObject({ code: 'INSTALL_PHASE_OPEN' });
    expect(existsSync(join(dir, 'deployed-during'))).toBe(false);

    writeFileSync(gate, '');
    expect((await run.done).code).toBe(0);
    const after = await runCli(['run', '--stage', 'deploy', '--', 'sh', '-c', 'touch deployed-after'], { env: cliEnv(dir, await broker.mintToken(claims)), cwd: dir });
    expect({ code: after.code, stderr: after.code === 0 ? '' : after.stderr }).toEqual({ code: 0, stderr: '' });
    expect(existsSync(join(dir, 'deployed-after'))).toBe(true);
  });

  it('keeps the install phase open past its heartbeat window while CMD runs (heartbeats), and closes it cleanly', async () => {
    const { dir, token } = await newCase();
    const out = await install(['--', 'sleep', '5'], dir, cliEnv(dir, token));
    expect({ code: out.code, stderr: out.code === 0 ? '' : out.stderr }).toEqual({ code: 0, stderr: '' });
    expect(jsonEvents(out.stderr).filter((e) => e.stagegate === 'warning')).toEqual([]);
    expect(await stageState(stageIdOf(out))).toMatchObject({ state: 'closed', exitCode: 0 });
  });

  it('when the broker loses the install phase (heartbeats missed), CMD is killed and the CLI exits 125', async () => {
    const { dir, token, claims } = await newCase();
    const run = startCli(['install', '--json', '--', 'sh', '-c', 'touch started; sleep 60; touch finished'], { env: cliEnv(dir, token), cwd: dir });
    await waitFor(() => existsSync(join(dir, 'started')), 20_000, 'the install command to start');
    // Freeze the CLI past the 3 s window: the reaper closes the install phase.
    run.child.kill('SIGSTOP');
    try {
      await waitFor(
        async () => {
          const r = await call(broker.url, 'POST', '/v1/stages', { token: await broker.mintToken(claims), body: { stage: 'publish' } });
          if (r.status === 201) await call(broker.url, 'DELETE', `/v1/stages/${r.body.stageId as string}`, { token: r.body.stageToken as string, body: { exitCode: 0 } });
          return r.status === 201;
        },
        20_000,
        'the broker to reap the install phase',
      );
    } finally {
      run.child.kill('SIGCONT');
    }
    const out = await run.done;
    expect(out.timedOut).toBe(false);
    expect(out.code).toBe(125);
    expect(jsonEvents(out.stderr).find((e) => e.stagegate === 'warning' && e.code === 'INSTALL_LOCK_LOST')).toBeDefined();
    expect(existsSync(join(dir, 'finished'))).toBe(false);
    expect(liveProcessesMentioning(dir)).toEqual([]);
  });

  describe('when the broker refuses the install phase, CMD never runs', () => {
    it('RUN_STAGE_OPEN: a credential-bearing stage of the build is open', async () => {
      const { dir, token, claims } = await newCase();
      const deploy = await call(broker.url, 'POST', '/v1/stages', { token: await broker.mintToken(claims), body: { stage: 'deploy' } });
      expect(deploy.status).toBe(201);
      try {
        const out = await install(['--', 'sh', '-c', 'touch ran'], dir, cliEnv(dir, token));
        expect(out.code).toBe(125);
        expect(jsonEvents(out.stderr)).toEqual([expect.objectContaining({ stagegate: 'error', code: 'RUN_STAGE_OPEN' })]);
        expect(existsSync(join(dir, 'ran'))).toBe(false);
        expectNoLeaks(out.stdout + out.stderr, [token, deploy.body.stageToken as string], 'CLI output');
      } finally {
        await call(broker.url, 'DELETE', `/v1/stages/${deploy.body.stageId as string}`, { token: deploy.body.stageToken as string });
      }
    });

    it('POLICY_DENIED: no rule for this identity', async () => {
      const { dir, token } = await newCase(buildClaims({ repository: 'evil/fork' }));
      const out = await install(['--', 'sh', '-c', 'touch ran'], dir, cliEnv(dir, token));
      expect(out.code).toBe(125);
      expect(jsonEvents(out.stderr)[0]).toMatchObject({ stagegate: 'error', code: 'POLICY_DENIED' });
      expect(existsSync(join(dir, 'ran'))).toBe(false);
    });

    it('POLICY_DENIED: --stage names a run stage (it would carry credentials)', async () => {
      const { dir, token } = await newCase();
      const out = await install(['--stage', 'deploy', '--', 'sh', '-c', 'touch ran'], dir, cliEnv(dir, token));
      expect(out.code).toBe(125);
      expect(jsonEvents(out.stderr)[0]).toMatchObject({ stagegate: 'error', code: 'POLICY_DENIED', details: { reason: 'phase' } });
      expect(existsSync(join(dir, 'ran'))).toBe(false);
    });

    it('UNAUTHENTICATED: no identity at all, or a token from another issuer', async () => {
      const { dir } = await newCase();
      const env = cliEnv(dir, '');
      delete env.STAGEGATE_IDENTITY_TOKEN;
      const none = await install(['--', 'sh', '-c', 'touch ran'], dir, env);
      expect(none.code).toBe(125);
      expect(jsonEvents(none.stderr)[0]).toMatchObject({ stagegate: 'error', code: 'UNAUTHENTICATED' });
      const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.';
      const bad = await install(['--', 'sh', '-c', 'touch ran'], dir, cliEnv(dir, forged));
      expect(bad.code).toBe(125);
      expect(jsonEvents(bad.stderr)[0]).toMatchObject({ stagegate: 'error', code: 'UNAUTHENTICATED' });
      expect(existsSync(join(dir, 'ran'))).toBe(false);
    });

    it('STAGE_ALREADY_RAN: the install phase of a build opens once', async () => {
      const { dir, token, claims } = await newCase();
      expect((await install(['--', 'true'], dir, cliEnv(dir, token))).code).toBe(0);
      const again = await install(['--', 'sh', '-c', 'touch ran'], dir, cliEnv(dir, await broker.mintToken(claims)));
      expect(again.code).toBe(125);
      expect(jsonEvents(again.stderr)[0]).toMatchObject({ stagegate: 'error', code: 'STAGE_ALREADY_RAN' });
      expect(existsSync(join(dir, 'ran'))).toBe(false);
    });
  });

  describe('usage mistakes are found before the install phase opens (exit 2, nothing opened)', () => {
    it.each([
      ['an allow-scripts range', ['--allow-scripts', 'left-pad@^1.0.0', '--', 'npm', 'install'], 'INVALID_REQUEST'],
      ['arguments that re-enable scripts', ['--', 'npm', 'install', '--ignore-scripts=false'], 'INVALID_REQUEST'],
      ['an allow-list for an unknown installer', ['--allow-scripts', 'a@1.0.0', '--', 'make', 'deps'], 'INVALID_REQUEST'],
      ['no command', ['--stage', 'install'], 'CONFIG_INVALID'],
      ['--keep "*"', ['--keep', '*', '--', 'true'], 'CONFIG_INVALID'],
      ['an unknown flag', ['--frobnicate', '--', 'true'], 'CONFIG_INVALID'],
    ])('%s', async (_what, args, code) => {
      const { dir, token, claims } = await newCase();
      const out = await install(args, dir, cliEnv(dir, token));
      expect(out.code).toBe(2);
      expect(jsonEvents(out.stderr)[0]).toMatchObject({ stagegate: 'error', code });
      // Nothing was opened: the build's once-only install stage is still available.
      const r = await call(broker.url, 'POST', '/v1/stages', { token: await broker.mintToken(claims), body: { stage: 'install', phase: 'install' } });
      expect(r.status).toBe(201);
      await call(broker.url, 'DELETE', `/v1/stages/${r.body.stageId as string}`, { token: r.body.stageToken as string, body: { exitCode: 0 } });
    });
  });

  it('scrubs the job secrets and the identity from CMD, prints names only, and no secret value reaches the output', async () => {
    const { dir, token } = await newCase();
    const secrets = {
      AWS_SECRET_ACCESS_KEY: `awssecret-${randomBytes(12).toString('hex')}`,
      NPM_TOKEN: `npm_${randomBytes(12).toString('hex')}`,
      GITHUB_TOKEN: `ghs_${randomBytes(12).toString('hex')}`,
      VAULT_TOKEN: `hvs.${randomBytes(12).toString('hex')}`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: `ghreq-${randomBytes(12).toString('hex')}`,
      ACTIONS_ID_TOKEN_REQUEST_URL: 'http://127.0.0.1:9/_apis/oidc/token?api-version=2.0',
      MY_SERVICE_PASSWORD: `pw-${randomBytes(12).toString('hex')}`,
    };
    const seen = join(dir, 'seen.json');
    const script = `require('fs').writeFileSync(${JSON.stringify(seen)}, JSON.stringify(process.env)); console.log('install output'); console.error('install diagnostics')`;
    const out = await runCli(['install', '--keep', 'NPM_TOKEN', '--', process.execPath, '-e', script], { env: cliEnv(dir, token, secrets), cwd: dir });
    expect({ code: out.code, stderr: out.code === 0 ? '' : out.stderr }).toEqual({ code: 0, stderr: '' });

    const env = JSON.parse(readFileSync(seen, 'utf8')) as Record<string, string>;
    for (const name of ['AWS_SECRET_ACCESS_KEY', 'GITHUB_TOKEN', 'VAULT_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_URL', 'MY_SERVICE_PASSWORD', 'STAGEGATE_IDENTITY_TOKEN', 'STAGEGATE_BROKER_URL']) {
      expect({ name, present: name in env }).toEqual({ name, present: false });
    }
    expect(env.NPM_TOKEN).toBe(secrets.NPM_TOKEN); // --keep
    expect(JSON.stringify(env)).not.toContain(token);

    // Human output: names of what was removed and kept, the policy, the containment.
    expect(out.stderr).toMatch(/stagegate: install phase opened \(stage install, id [0-9a-f-]+, rule web-main/);
    expect(out.stderr).toMatch(/removed from the install's environment \(\d+\): .*AWS_SECRET_ACCESS_KEY.*STAGEGATE_IDENTITY_TOKEN/);
    expect(out.stderr).toMatch(/kept by --keep \(visible to the install and its allowed scripts\): NPM_TOKEN/);
    expect(out.stderr).toMatch(/lifecycle scripts off \(unknown: env npm_config_ignore_scripts=true, env YARN_ENABLE_SCRIPTS=false\)/);
    expect(out.stderr).toMatch(/containment (cgroup|marker\+pgid|pgid).*, PID namespace (yes|no); \d+ leftover process(es)? killed/);
    expect(out.stderr).toMatch(/install phase closed \(closed\) after the command ended with exit code 0/);
    expect(out.stdout).toBe('install output\n');
    expect(out.stderr).toContain('install diagnostics\n');
    expectNoLeaks(out.stdout + out.stderr, [...Object.values(secrets).filter((v) => !v.startsWith('http')), token], 'CLI output');
    expectNoLeaks(broker.log.text(), [token, ...Object.values(secrets).filter((v) => !v.startsWith('http'))], 'broker log');
  });
});

/** The claims inside a JWT (to mint another token of the same build). */
function jwtClaims(jwt: string): Record<string, unknown> {
  const payload = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  const { iss: _i, aud: _a, exp: _e, iat: _t, nbf: _n, jti: _j, ...claims } = payload;
  return claims;
}
