/**
 * "Is the process on the other end of this loopback TCP connection the stage command or
 * one of its descendants?" — the authorisation of the GCE metadata endpoint, whose
 * protocol has no secret a client could present.
 *
 * Linux only, via /proc:
 * 1. the client's socket is the row of /proc/net/tcp (or tcp6) whose local end is the
 *    peer's address:port and whose remote end is our listening address:port; its inode
 *    names the socket;
 * 2. the stage's process tree is the stage command's pid plus every process whose parent
 *    chain (the `ppid` field of /proc/PID/stat) reaches it;
 * 3. the caller is allowed if one process of that tree holds an fd linked to
 *    `socket:[inode]`.
 * Processes that left the tree (daemons re-parented to init or a subreaper) are refused.
 * /proc/PID/fd of another user's process is unreadable, so such a process is refused too.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';

/** What the check decided: `unavailable` means /proc could not answer (fail closed). */
export type ProcessTreeVerdict = 'allowed' | 'denied' | 'unavailable';

/** The four-tuple of an accepted connection, as seen by the server. */
export interface LoopbackConnection {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

export interface ProcessTreeCheckOptions {
  /** Root of procfs; default `/proc`. */
  readonly procRoot?: string;
}

/**
 * Create a checker bound to a procfs root.
 *
 * @example
 * ```ts
 * const check = createProcessTreeCheck();
 * const verdict = await check(req.socket as LoopbackConnection, child.pid!);
 * if (verdict !== 'allowed') refuse();
 * ```
 */
export function createProcessTreeCheck(
  options: ProcessTreeCheckOptions = {},
): (conn: LoopbackConnection, rootPid: number) => Promise<ProcessTreeVerdict> {
  const proc = options.procRoot ?? '/proc';
  return async (conn, rootPid) => {
    let inode: string | undefined;
    try {
      inode = await findClientSocketInode(proc, conn);
    } catch {
      return 'unavailable';
    }
    if (inode === undefined) return 'denied';
    let tree: number[];
    try {
      tree = await listProcessTree(proc, rootPid);
    } catch {
      return 'unavailable';
    }
    const target = `socket:[${inode}]`;
    for (const pid of tree) {
      let fds: string[];
      try {
        fds = await readdir(`${proc}/${pid}/fd`);
      } catch {
        continue; // exited meanwhile, or not ours
      }
      for (const fd of fds) {
        try {
          if ((await readlink(`${proc}/${pid}/fd/${fd}`)) === target) return 'allowed';
        } catch {
          // fd closed meanwhile
        }
      }
    }
    return 'denied';
  };
}

async function findClientSocketInode(proc: string, conn: LoopbackConnection): Promise<string | undefined> {
  const want = { local: `${normaliseIp(conn.remoteAddress)}:${conn.remotePort}`, remote: `${normaliseIp(conn.localAddress)}:${conn.localPort}` };
  let readAny = false;
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await readFile(`${proc}/net/${table}`, 'utf8');
      readAny = true;
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = decodeEndpoint(f[1]!);
      const remote = decodeEndpoint(f[2]!);
      if (local === want.local && remote === want.remote && f[9] !== '0') return f[9];
    }
  }
  if (!readAny) throw new Error('no /proc/net/tcp');
  return undefined;
}

/** `0100007F:1F90` → `127.0.0.1:8080`; tcp6 rows hold four little-endian 32-bit words. */
function decodeEndpoint(hex: string): string | undefined {
  const [addr, port] = hex.split(':');
  if (!addr || !port) return undefined;
  const p = parseInt(port, 16);
  if (addr.length === 8) return `${le32ToIpv4(addr)}:${p}`;
  if (addr.length === 32) {
    const words = [0, 8, 16, 24].map((i) => addr.slice(i, i + 8));
    // ::ffff:a.b.c.d (IPv4-mapped) — how a dual-stack client socket shows an IPv4 peer.
    if (words[0] === '00000000' && words[1] === '00000000' && words[2] === '0000FFFF') return `${le32ToIpv4(words[3]!)}:${p}`;
    const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)]).join('').toLowerCase();
    return `[${bytes}]:${p}`;
  }
  return undefined;
}

function le32ToIpv4(word: string): string {
  const b = [6, 4, 2, 0].map((i) => parseInt(word.slice(i, i + 2), 16));
  return b.join('.');
}

function normaliseIp(ip: string): string {
  if (ip.startsWith('::ffff:') && ip.includes('.')) return ip.slice(7);
  return ip;
}

/** The root pid and all its live descendants, by walking every process's ppid. */
async function listProcessTree(proc: string, rootPid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`${proc}/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid …" — comm may hold spaces and parentheses, so split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    const pid = Number(entry);
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [rootPid];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    for (const c of children.get(pid) ?? []) queue.push(c);
  }
  return out;
}
