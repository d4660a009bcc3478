/**
 * A cgroup v2 subtree for one install. Every process the install starts is born inside
 * it and cannot leave it without write access to another cgroup's `cgroup.procs`
 * (which an unprivileged install does not have), whatever it does to its session,
 * process group or environment. `cgroup.kill` (Linux ≥ 5.14) then kills all of them
 * atomically, so a daemon forking in a loop cannot outrun the kill.
 *
 * Where no writable cgroup v2 exists (macOS, cgroup v1 only, a systemd unit without
 * delegation, a container without write access), {@link createInstallCgroup} says why,
 * and the caller falls back to the process group + marker scan.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** How long {@link InstallCgroup.killAll} waits for the cgroup to empty, in ms. */
export const CGROUP_KILL_TIMEOUT_MS = 3000;

/** A created cgroup. */
export interface InstallCgroup {
  /** Absolute path of the cgroup directory. */
  readonly path: string;
  /** `cgroup.procs` of it: writing `0` there moves the writing process in. */
  readonly procsFile: string;
  /** Kill every process in the cgroup until it is empty (bounded); returns the distinct pids killed. */
  killAll(): Promise<number[]>;
  /** Remove the (empty) cgroup directory; best effort, retried briefly. */
  remove(): Promise<void>;
}

/** Result of {@link createInstallCgroup}. */
export type CreateCgroupResult = { readonly ok: true; readonly cgroup: InstallCgroup } | { readonly ok: false; readonly reason: string };

/**
 * Create `<cgroup2 mount><our cgroup>/stagegate-install-<random>`.
 * @param root override of the parent cgroup directory (tests); default: found from
 *   `/proc/self/mountinfo` and `/proc/self/cgroup`.
 */
export function createInstallCgroup(root?: string): CreateCgroupResult {
  const parent = root ?? findOwnCgroupDir();
  if (parent === undefined) return { ok: false, reason: 'no cgroup v2 hierarchy' };
  const path = join(parent, `stagegate-install-${randomBytes(6).toString('hex')}`);
  try {
    mkdirSync(path);
  } catch (err) {
    return { ok: false, reason: `cgroup not writable (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  const procsFile = join(path, 'cgroup.procs');
  const killFile = join(path, 'cgroup.kill');
  const cgroup: InstallCgroup = {
    path,
    procsFile,
    async killAll() {
      const killed = new Set<number>();
      const deadline = Date.now() + CGROUP_KILL_TIMEOUT_MS;
      for (;;) {
        const pids = readPids(procsFile);
        if (pids.length === 0 || Date.now() > deadline) break;
        for (const pid of pids) killed.add(pid);
        if (existsSync(killFile)) {
          try {
            writeFileSync(killFile, '1');
          } catch {
            killEach(pids);
          }
        } else {
          // Before 5.14: no atomic kill. Freeze first so nobody forks between read and kill.
          try {
            writeFileSync(join(path, 'cgroup.freeze'), '1');
          } catch {
            // no freezer: the loop catches late forks
          }
          killEach(pids);
        }
        await delay(10);
      }
      return [...killed];
    },
    async remove() {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(path);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
          // EBUSY right after a kill, while the kernel finishes the exits: try again shortly
          await delay(10);
        }
      }
    },
  };
  return { ok: true, cgroup };
}

/** The directory of our own cgroup in the cgroup v2 hierarchy, if one is mounted. */
export function findOwnCgroupDir(): string | undefined {
  let mountinfo: string;
  let own: string;
  try {
    mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    own = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return undefined;
  }
  // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS … - FSTYPE SOURCE SUPEROPTS"
  let mount: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right === undefined || !right.startsWith('cgroup2 ')) continue;
    const fields = (left ?? '').split(' ');
    if (fields[3] === '/' && fields[4] !== undefined) {
      mount = fields[4];
      break;
    }
  }
  const v2 = own.split('\n').find((l) => l.startsWith('0::'));
  if (mount === undefined || v2 === undefined) return undefined;
  return join(mount, v2.slice(3).trim());
}

function readPids(procsFile: string): number[] {
  try {
    return readFileSync(procsFile, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map(Number);
  } catch {
    return [];
  }
}

function killEach(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
