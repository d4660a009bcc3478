/**
 * Run one command so that, when it exits, nothing it started is left running.
 *
 * Layers, strongest first (each one used where the machine allows it, all of them
 * applied, so a gap in one is covered by another):
 * 1. PID namespace (see pid-namespace.ts): the command's processes cannot see or read the
 *    processes around them, and the kernel kills all of them when the namespace ends.
 * 2. cgroup v2 subtree (install-cgroup.ts): every descendant is inside; `cgroup.kill`
 *    kills them all, whatever session, process group or environment they have.
 * 3. Own session and process group (spawned detached → `setsid`): `kill(-pgid)` reaches
 *    everything that did not call `setsid`/`setpgid`.
 * 4. Marker scan: a random `STAGEGATE_INSTALL_MARKER` in the environment is inherited by
 *    every descendant; `/proc/*\/environ` is scanned (and `/proc/*\/stat` for the session
 *    id) and every match is stopped and killed, again and again until a scan finds none
 *    (a daemon may fork while we kill), bounded by {@link SWEEP_TIMEOUT_MS}.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Readable } from 'node:stream';
import { createInstallCgroup, type InstallCgroup } from './install-cgroup';
import { hasProcFs, listProcesses } from './list-processes';
import { probePidNamespace } from './pid-namespace';
import { SUPERVISOR_SOURCE } from './supervisor-source';

/** Upper bound of the time spent killing leftovers after the command exits, in ms. */
export const SWEEP_TIMEOUT_MS = 5000;

/** The environment variable that carries the install's marker. Not a secret. */
export const INSTALL_MARKER_ENV = 'STAGEGATE_INSTALL_MARKER';

/**
 * How leftovers are found and killed:
 * - `cgroup`: a cgroup v2 subtree held every process (plus the scan below);
 * - `marker+pgid`: process group, session id and environment marker scan of `/proc`;
 * - `pgid`: only the process group (no `/proc`: macOS).
 */
export type Containment = 'cgroup' | 'marker+pgid' | 'pgid';

/** Standard streams of the command: as for `child_process.spawn`, three entries at most. */
export type ContainedStdio = 'inherit' | 'ignore' | 'pipe' | readonly ('inherit' | 'ignore' | 'pipe' | number)[];

/** Options of {@link runContained}. */
export interface RunContainedOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** The complete environment of the command (already scrubbed); the marker is added. */
  readonly env: Readonly<Record<string, string>>;
  /** Random marker value (hex); inherited by every descendant. */
  readonly marker: string;
  /** Default `inherit`. */
  readonly stdio?: ContainedStdio;
  /** `auto` (default) uses a cgroup where possible; `marker+pgid` never does (tests, docs). */
  readonly containment?: 'auto' | 'marker+pgid';
  /** `auto` (default) uses a PID namespace where possible; `off` never does. */
  readonly pidNamespace?: 'auto' | 'off';
  /** Forward SIGINT/SIGTERM received by this process to the command's group. Default true. */
  readonly forwardSignals?: boolean;
  /** Called once the command's process exists (e.g. to read piped output). */
  readonly onStarted?: (child: ChildProcess) => void;
}

/** Result of {@link runContained}. */
export interface RunContainedResult {
  /** Exit code of the command, `null` when a signal ended it. 127/126: could not start. */
  readonly exitCode: number | null;
  /** Signal that ended the command, if any. */
  readonly signal: NodeJS.Signals | null;
  /** Signal received by this process and forwarded to the command, if any. */
  readonly forwardedSignal: NodeJS.Signals | null;
  /** Distinct processes still alive after the command exited, all killed. */
  readonly leftoversKilled: number;
  readonly containment: Containment;
  readonly pidNamespace: boolean;
  /** Why a cgroup was not used, when it was not. */
  readonly cgroupUnavailableReason?: string;
  /** Error code when the command could not be started (`ENOENT`, `EACCES`). */
  readonly spawnError?: string;
}

interface SupervisorReport {
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  leftovers?: number;
  cgroup?: 'joined' | 'failed' | 'none';
  spawnError?: string;
}

/**
 * Run `command` contained; resolves once it has exited and its leftovers are gone.
 * Never rejects for the command's own failure (that is in the result).
 * @example
 * const r = await runContained({ command: 'npm', args: ['ci'], cwd, env, marker });
 * if (r.leftoversKilled > 0) console.warn(`killed ${r.leftoversKilled} leftover processes`);
 */
export async function runContained(options: RunContainedOptions): Promise<RunContainedResult> {
  const procFs = hasProcFs();
  let cgroup: InstallCgroup | undefined;
  let cgroupUnavailableReason: string | undefined;
  if (options.containment === 'marker+pgid') {
    cgroupUnavailableReason = 'disabled by option';
  } else {
    const made = procFs ? createInstallCgroup() : { ok: false as const, reason: 'no /proc' };
    if (made.ok) cgroup = made.cgroup;
    else cgroupUnavailableReason = made.reason;
  }
  const nsPrefix = options.pidNamespace === 'off' ? undefined : probePidNamespace();
  const markerEntry = `${INSTALL_MARKER_ENV}=${options.marker}`;
  const config = JSON.stringify({ cgroupProcs: cgroup?.procsFile ?? null, pidNamespace: nsPrefix !== undefined, sweepTimeoutMs: SWEEP_TIMEOUT_MS });
  const supervisor = [process.execPath, '-e', SUPERVISOR_SOURCE, config, options.command, ...options.args];
  const argv = nsPrefix ? [...nsPrefix, ...supervisor] : supervisor;
  const std = options.stdio ?? 'inherit';
  const stdio = (typeof std === 'string' ? [std, std, std, 'pipe'] : [...std, 'pipe']) as StdioOptions;

  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: options.cwd,
    env: { ...options.env, [INSTALL_MARKER_ENV]: options.marker },
    stdio,
    // detached on POSIX = setsid(): own session and process group, pgid = child.pid.
    detached: true,
  });
  const leader = child.pid;
  const reportText = readAll(child.stdio[3] as Readable | null);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: string }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err: NodeJS.ErrnoException) => resolve({ code: 127, signal: null, error: err.code ?? 'error' }));
  });

  let forwardedSignal: NodeJS.Signals | null = null;
  const forward = (sig: NodeJS.Signals): void => {
    forwardedSignal = sig;
    if (leader !== undefined) signalGroup(leader, sig);
  };
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => [sig, () => forward(sig)] as const);
  if (options.forwardSignals !== false) for (const [sig, h] of handlers) process.on(sig, h);

  try {
    if (leader !== undefined) {
      try {
        options.onStarted?.(child);
      } catch {
        // An observer's failure must not skip the wait and the kill below: returning (or
        // throwing) now would leave the install running, uncontained, while the caller
        // goes on to release the install lock.
      }
    }
    const exit = await exited;
    const report = parseReport(await withTimeout(reportText, 2000, ''));
    const killed = new Set<number>();
    if (cgroup) for (const pid of await cgroup.killAll()) killed.add(pid);
    if (leader !== undefined) for (const pid of await sweep(leader, markerEntry, procFs)) killed.add(pid);
    const inCgroup = report?.cgroup === 'joined';
    const spawnError = report?.spawnError ?? exit.error;
    return {
      exitCode: report ? (report.exitCode ?? null) : exit.code,
      signal: report ? (report.signal ?? null) : exit.signal,
      forwardedSignal,
      leftoversKilled: killed.size + (report?.leftovers ?? 0),
      containment: inCgroup ? 'cgroup' : procFs ? 'marker+pgid' : 'pgid',
      pidNamespace: nsPrefix !== undefined && report !== undefined,
      ...(inCgroup ? {} : { cgroupUnavailableReason: cgroupUnavailableReason ?? 'supervisor could not join the cgroup' }),
      ...(spawnError !== undefined ? { spawnError } : {}),
    };
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
    await cgroup?.remove();
  }
}

/**
 * Kill, until a scan finds none, every process of the leader's process group or session
 * and every process carrying the marker. Returns the distinct pids killed.
 */
async function sweep(leader: number, markerEntry: string, procFs: boolean): Promise<number[]> {
  const killed = new Set<number>();
  signalGroup(leader, 'SIGKILL');
  if (!procFs) return [];
  const deadline = Date.now() + SWEEP_TIMEOUT_MS;
  for (;;) {
    const found = listProcesses(markerEntry).filter(
      (p) => p.pid !== process.pid && p.state !== 'Z' && p.state !== 'X' && (p.hasMarker || p.pgid === leader || p.sid === leader),
    );
    if (found.length === 0 || Date.now() > deadline) break;
    // Stop first, then kill: a stopped process cannot fork between our scan and our kill.
    for (const p of found) signalPid(p.pid, 'SIGSTOP');
    for (const p of found) {
      killed.add(p.pid);
      signalPid(p.pid, 'SIGKILL');
    }
    signalGroup(leader, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return [...killed];
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // ESRCH: the group is empty
  }
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

function readAll(stream: Readable | null): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      // The supervisor writes one short line; cap what a confused writer could send.
      if (text.length < 65_536) text += chunk;
    });
    stream.on('end', () => resolve(text));
    stream.on('error', () => resolve(text));
    stream.on('close', () => resolve(text));
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    p.then((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

function parseReport(text: string): SupervisorReport | undefined {
  const line = text.trim().split('\n').pop();
  if (!line) return undefined;
  try {
    const parsed = JSON.parse(line) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as SupervisorReport) : undefined;
  } catch {
    return undefined;
  }
}
