/**
 * SIGINT/SIGTERM sent to the installer process reach the install's process group, and
 * cleanup still runs. The installer is a real separate process (the compiled
 * runContainedInstall in a driver), signalled the way CI cancels a step.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InstallResult } from '../../sdk/install';
import { killProcessesMentioning, liveProcessesMentioning } from '../harness/process-scan';
import { buildInstallDriver } from './build-install-driver';

const DAEMON = join(__dirname, 'scripts', 'double-fork-daemon.js');
let root: string;
let driver: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sg-signals-'));
  driver = buildInstallDriver(join(root, 'driver'));
});

afterAll(() => {
  killProcessesMentioning(root, { inEnviron: false });
  rmSync(root, { recursive: true, force: true });
});


async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function startDriver(name: string, command: string, args: string[], pidNamespace: 'auto' | 'off'): { child: ChildProcess; done: Promise<InstallResult> } {
  const resultPath = join(root, `${name}.json`);
  const child = spawn(process.execPath, [driver, JSON.stringify({ command, args, cwd: root, stdio: 'ignore', pidNamespace }), resultPath], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdio: 'ignore',
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const done = new Promise<InstallResult>((resolve, reject) =>
    child.on('exit', () => {
      clearTimeout(timer);
      if (!existsSync(resultPath)) reject(new Error('driver wrote no result'));
      else resolve(JSON.parse(readFileSync(resultPath, 'utf8')) as InstallResult);
    }),
  );
  return { child, done };
}

(process.platform === 'linux' ? describe : describe.skip)('signals to the installer', () => {
  for (const ns of ['off', 'auto'] as const) {
    it(`SIGTERM is forwarded, the command dies of it, and its daemon is killed (pidNamespace ${ns})`, async () => {
      const pidfile = join(root, `term-${ns}.pid`);
      const ready = join(root, `term-${ns}.ready`);
      const { child, done } = startDriver(`term-${ns}`, 'sh', ['-c', `"${process.execPath}" "${DAEMON}" 0 "${pidfile}" && : > "${ready}" && sleep 30`], ns);
      await waitFor(() => existsSync(ready), 10_000);
      child.kill('SIGTERM');
      const result = await done;
      expect(result).toMatchObject({ exitCode: null, signal: 'SIGTERM', forwardedSignal: 'SIGTERM' });
      expect(result.leftoversKilled).toBeGreaterThanOrEqual(1);
      expect(liveProcessesMentioning(pidfile, { inEnviron: false })).toEqual([]);
    });

    it(`SIGINT is forwarded (pidNamespace ${ns})`, async () => {
      const ready = join(root, `int-${ns}.ready`);
      const { child, done } = startDriver(
        `int-${ns}`,
        process.execPath,
        ['-e', `require('fs').writeFileSync(${JSON.stringify(ready)}, '1'); setInterval(() => {}, 1000)`],
        ns,
      );
      await waitFor(() => existsSync(ready), 10_000);
      child.kill('SIGINT');
      const result = await done;
      expect(result).toMatchObject({ exitCode: null, signal: 'SIGINT', forwardedSignal: 'SIGINT' });
      expect(liveProcessesMentioning(ready, { inEnviron: false })).toEqual([]);
    });
  }
});
