/**
 * A Linux `/proc` snapshot of the facts containment needs: process group, session,
 * state, and whether the install's marker is in the process's environment.
 *
 * `/proc/PID/environ` is the environment the process was *started* with (the initial
 * block on its stack), readable for processes of the same user. A process that
 * overwrites that memory or re-execs with an empty environment no longer carries the
 * marker: that is the documented limit of the marker scan (the cgroup and the PID
 * namespace have no such limit).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** One process as seen in `/proc`. */
export interface ProcessFacts {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly sid: number;
  /** `R`, `S`, `D`, `Z` (zombie: already dead, waiting to be reaped), `T`, … */
  readonly state: string;
  /** True when the environment holds `NAME=VALUE` of the marker asked for. */
  readonly hasMarker: boolean;
}

/** Whether this machine has a Linux-style `/proc` (false on macOS). */
export function hasProcFs(): boolean {
  try {
    readFileSync('/proc/self/stat', 'utf8');
    return true;
  } catch {
    return false;
  }
}

/**
 * Every process visible in `/proc`, with `hasMarker` computed for `marker` (`NAME=VALUE`).
 * Processes that vanish while being read are skipped.
 */
export function listProcesses(marker?: string): ProcessFacts[] {
  const out: ProcessFacts[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  const needle = marker === undefined ? undefined : Buffer.from(`${marker}\0`);
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const facts = readStat(Number(entry));
    if (!facts) continue;
    let hasMarker = false;
    if (needle) {
      try {
        const environ = readFileSync(`/proc/${entry}/environ`);
        // Match at the start of an entry: after NUL or at offset 0.
        const at = environ.indexOf(needle);
        hasMarker = at === 0 || (at > 0 && environ.indexOf(Buffer.concat([Buffer.from([0]), needle])) !== -1);
      } catch {
        // another user's process, or gone: not ours
      }
    }
    out.push({ ...facts, hasMarker });
  }
  return out;
}

/** State of one process, or `undefined` when it no longer exists. */
export function readProcessState(pid: number): string | undefined {
  return readStat(pid)?.state;
}

/** True while `pid` exists and is not a zombie. */
export function isProcessAlive(pid: number): boolean {
  const state = readProcessState(pid);
  return state !== undefined && state !== 'Z' && state !== 'X';
}

function readStat(pid: number): Omit<ProcessFacts, 'hasMarker'> | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may itself contain ") ": split after the last one.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  const [state, ppid, pgid, sid] = [fields[0], fields[1], fields[2], fields[3]];
  if (state === undefined || ppid === undefined || pgid === undefined || sid === undefined) return undefined;
  return { pid, state, ppid: Number(ppid), pgid: Number(pgid), sid: Number(sid) };
}
