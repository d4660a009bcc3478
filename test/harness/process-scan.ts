/**
 * Finding processes from outside any namespace, for tests: every live (not zombie)
 * process whose command line (and, by default, environment) mentions a string, e.g. a
 * test's unique temp directory. PIDs are those of this (the root) PID namespace, so they
 * can be killed from here.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { isProcessAlive } from '../../sdk/install';

export interface MentionOptions {
  /** Also search each process's initial environment (default true); false: the command line only. */
  readonly inEnviron?: boolean;
}

export function liveProcessesMentioning(needle: string, options: MentionOptions = {}): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      let text = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (options.inEnviron !== false) {
        try {
          text += readFileSync(`/proc/${e}/environ`, 'utf8');
        } catch {
          // environ of another user's process: cmdline is enough
        }
      }
      if (text.includes(needle) && isProcessAlive(Number(e))) out.push(Number(e));
    } catch {
      // gone between readdir and read
    }
  }
  return out;
}

/**
 * Every live (not zombie) process whose working directory is `dir` or below it, except
 * `exclude`: the processes of an install running in a project directory (npm, its
 * lifecycle shells, anything they started — a daemon keeps the cwd it inherited).
 */
export function liveProcessesWorkingIn(dir: string, exclude: readonly number[] = []): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!/^\d+$/.test(e) || pid === process.pid || exclude.includes(pid)) continue;
    try {
      if (!isProcessAlive(pid)) continue;
      const cwd = readlinkSync(`/proc/${e}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) out.push(pid);
    } catch {
      // gone, or not ours to inspect
    }
  }
  return out;
}

/** SIGKILL every live process mentioning `needle` (afterAll clean-up). */
export function killProcessesMentioning(needle: string, options: MentionOptions = {}): number {
  let n = 0;
  for (const pid of liveProcessesMentioning(needle, options)) {
    try {
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {
      // gone
    }
  }
  return n;
}

/**
 * Poll the process table every `intervalMs` (default 20 ms) and remember every live
 * process whose command line contains `needle`, with that command line, until stopped.
 */
export function watchProcesses(needle: string, intervalMs = 20): { seen: Map<number, string>; stop(): void } {
  const seen = new Map<number, string>();
  const scan = () => {
    for (const pid of liveProcessesMentioning(needle)) {
      if (seen.has(pid)) continue;
      try {
        seen.set(pid, readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '));
      } catch {
        // gone already
      }
    }
  };
  const timer = setInterval(scan, intervalMs);
  scan();
  return { seen, stop: () => clearInterval(timer) };
}

