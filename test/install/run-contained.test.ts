import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probePidNamespace, runContained, type RunContainedOptions } from '../../sdk/install';
import { killProcessesMentioning, liveProcessesMentioning } from '../harness/process-scan';

const DAEMON = join(__dirname, 'scripts', 'double-fork-daemon.js');
const linux = process.platform === 'linux';
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-contained-'));
});

afterAll(() => {
  // Whatever a failed assertion left behind must not outlive the test run.
  killProcessesMentioning(dir, { inEnviron: false });
  rmSync(dir, { recursive: true, force: true });
});

/** Daemon stages that wrote their pid (the pid as seen in their own PID namespace). */
function daemonPids(pidfile: string): number[] {
  if (!existsSync(pidfile)) return [];
  return readFileSync(pidfile, 'utf8').split('\n').filter(Boolean).map(Number);
}


let n = 0;
function base(over: Partial<RunContainedOptions> & { args: string[] }): RunContainedOptions {
  n += 1;
  return { command: process.execPath, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, marker: `m${n}${Date.now()}`, stdio: 'ignore', ...over };
}

const modes: { name: string; opts: Pick<RunContainedOptions, 'containment' | 'pidNamespace'>; containment: string; ns: boolean }[] = [
  { name: 'marker+pgid only', opts: { containment: 'marker+pgid', pidNamespace: 'off' }, containment: 'marker+pgid', ns: false },
  { name: 'cgroup', opts: { containment: 'auto', pidNamespace: 'off' }, containment: 'cgroup', ns: false },
  { name: 'PID namespace', opts: { containment: 'marker+pgid', pidNamespace: 'auto' }, containment: 'marker+pgid', ns: true },
];

(linux ? describe : describe.skip)('runContained leaves no survivors', () => {
  for (const mode of modes) {
    it(`kills a double-forked setsid daemon (${mode.name})`, async () => {
      if (mode.ns && !probePidNamespace()) throw new Error('this machine has no usable PID namespace; the test expects one');
      const pidfile = join(dir, `daemon-${n}.pid`);
      const r = await runContained(base({ args: [DAEMON, '0', pidfile], ...mode.opts }));
      const pids = daemonPids(pidfile);
      expect(r.exitCode).toBe(0);
      expect(pids).toHaveLength(1);
      expect(liveProcessesMentioning(pidfile, { inEnviron: false })).toEqual([]);
      expect(r.leftoversKilled).toBeGreaterThanOrEqual(1);
      expect(r.containment).toBe(mode.containment);
      expect(r.pidNamespace).toBe(mode.ns);
    });
  }

  it('kills a daemon that keeps forking while it is being killed (marker+pgid)', async () => {
    const pidfile = join(dir, `respawn-${n}.pid`);
    const r = await runContained(base({ args: [DAEMON, '0', pidfile, '--respawn'], containment: 'marker+pgid', pidNamespace: 'off' }));
    await new Promise((res) => setTimeout(res, 100)); // any survivor would have forked by now
    const pids = daemonPids(pidfile);
    expect(pids.length).toBeGreaterThanOrEqual(1);
    expect(liveProcessesMentioning(pidfile, { inEnviron: false })).toEqual([]);
    expect(r.leftoversKilled).toBeGreaterThanOrEqual(1);
  });

  it('a daemon that clears its environment and calls setsid escapes marker+pgid (the documented limit)', async () => {
    const pidfile = join(dir, `escape-${n}.pid`);
    const r = await runContained(base({ args: [DAEMON, '0', pidfile, '--clear-env'], containment: 'marker+pgid', pidNamespace: 'off' }));
    const pids = daemonPids(pidfile);
    expect(r.exitCode).toBe(0);
    expect(pids).toHaveLength(1);
    // It survives: that is why the cgroup and the PID namespace exist.
    expect(liveProcessesMentioning(pidfile, { inEnviron: false })).toEqual(pids);
    process.kill(pids[0] as number, 'SIGKILL');
  });

  it('the cgroup catches a daemon that clears its environment and calls setsid', async () => {
    const pidfile = join(dir, `cg-escape-${n}.pid`);
    const r = await runContained(base({ args: [DAEMON, '0', pidfile, '--clear-env'], containment: 'auto', pidNamespace: 'off' }));
    const pids = daemonPids(pidfile);
    expect(r.containment).toBe('cgroup');
    expect(pids).toHaveLength(1);
    expect(liveProcessesMentioning(pidfile, { inEnviron: false })).toEqual([]);
    expect(r.leftoversKilled).toBeGreaterThanOrEqual(1);
  });

  it('the PID namespace catches a daemon that clears its environment and calls setsid', async () => {
    const pidfile = join(dir, `ns-escape-${n}.pid`);
    const r = await runContained(base({ args: [DAEMON, '0', pidfile, '--clear-env'], containment: 'marker+pgid', pidNamespace: 'auto' }));
    const pids = daemonPids(pidfile);
    expect(r.pidNamespace).toBe(true);
    expect(pids).toHaveLength(1);
    expect(liveProcessesMentioning(pidfile, { inEnviron: false })).toEqual([]);
    expect(r.leftoversKilled).toBeGreaterThanOrEqual(1);
  });
});

describe('runContained passes exit status through', () => {
  for (const ns of ['off', 'auto'] as const) {
    it(`exit code (pidNamespace ${ns})`, async () => {
      const r = await runContained(base({ args: ['-e', 'process.exit(7)'], pidNamespace: ns }));
      expect(r).toMatchObject({ exitCode: 7, signal: null, leftoversKilled: 0 });
    });

    it(`death by signal (pidNamespace ${ns})`, async () => {
      const r = await runContained(base({ args: ['-e', "process.kill(process.pid, 'SIGTERM')"], pidNamespace: ns }));
      expect(r).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    });

    it(`a command that does not exist (pidNamespace ${ns})`, async () => {
      const r = await runContained(base({ args: [], command: join(dir, 'no-such-command'), pidNamespace: ns }));
      expect(r.exitCode).toBe(127);
      expect(r.spawnError).toBe('ENOENT');
    });
  }

  it('hands the scrubbed environment plus the marker to the command, nothing else', async () => {
    const out = join(dir, 'env.json');
    const r = await runContained(
      base({ args: ['-e', `require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.env))`], env: { PATH: '/usr/bin:/bin', ONLY_THIS: 'x' }, marker: 'abc123' }),
    );
    expect(r.exitCode).toBe(0);
    const env = JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>;
    expect(env.ONLY_THIS).toBe('x');
    expect(env.STAGEGATE_INSTALL_MARKER).toBe('abc123');
    expect(Object.keys(env).sort()).toEqual(['ONLY_THIS', 'PATH', 'STAGEGATE_INSTALL_MARKER']);
  });
});
