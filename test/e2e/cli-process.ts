/**
 * Runs the built `stagegate` CLI (`dist/sdk/cli/main.js`) as a real child process with an
 * explicit environment, collecting its output, bounded in time (SIGKILL on timeout).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from '../harness/broker';

export interface CliOutcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when the bound was reached and the CLI was SIGKILLed. */
  readonly timedOut: boolean;
}

export interface CliRun {
  readonly child: ChildProcess;
  /** Resolves when the CLI process exited (not waiting for orphans holding its pipes). */
  readonly done: Promise<CliOutcome>;
  stderr(): string;
}

/** Start `node dist/sdk/cli/main.js ARGS…`; `timeoutMs` (default 90 s) bounds it. */
export function startCli(args: readonly string[], options: { env: Record<string, string>; cwd: string; timeoutMs?: number }): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 90_000);
  const done = new Promise<CliOutcome>((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Give the pipes a moment to drain what the CLI wrote just before exiting.
      setTimeout(() => resolve({ code, signal, stdout, stderr, timedOut }), 50);
    });
  });
  return { child, done, stderr: () => stderr };
}

/** Run the CLI to the end. */
export function runCli(args: readonly string[], options: { env: Record<string, string>; cwd: string; timeoutMs?: number }): Promise<CliOutcome> {
  return startCli(args, options).done;
}

/** The `--json` events the CLI wrote on stderr (lines of other programs are skipped). */
export function jsonEvents(stderr: string): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{"stagegate"')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, any>);
    } catch {
      // a line of CMD's output that happened to look like ours
    }
  }
  return out;
}
