/**
 * A fresh PID namespace (with its own `/proc`) for the install, via util-linux `unshare`.
 *
 * Why: scrubbing the install's environment does not hide the secrets of the processes
 * *around* it. `/proc/PID/environ` of every process of the same user is readable, and the
 * CI step's shell, the runner and `stagegate` itself were started with the job's full
 * environment. Inside a new PID namespace with `/proc` remounted, the install sees only
 * its own processes: its ancestors are not there to read. And when the namespace's
 * first process exits, the kernel kills every process left in it — a double-forked,
 * `setsid`, environment-clearing daemon included.
 *
 * Unprivileged users need a user namespace for this (`--user --map-current-user`, so the
 * install keeps its uid); some distributions forbid that (Ubuntu 24.04 AppArmor policy,
 * `kernel.unprivileged_userns_clone=0`), and there is no `unshare` on macOS. The probe
 * then fails and the caller reports `pidNamespace: false`.
 */
import { spawnSync } from 'node:child_process';

/** How long the availability probe may take, in ms. */
export const PID_NAMESPACE_PROBE_TIMEOUT_MS = 3000;

let cached: { readonly prefix: readonly string[] | undefined } | undefined;

/**
 * The command prefix that runs a program as PID 1 of a new PID + mount namespace, or
 * `undefined` when this machine does not allow it. Probed once per process (runs
 * `unshare … true`, a few ms) and cached.
 */
export function probePidNamespace(): readonly string[] | undefined {
  if (cached) return cached.prefix;
  let prefix: readonly string[] | undefined;
  if (process.platform === 'linux') {
    const ns = ['--pid', '--fork', '--mount-proc', '--kill-child'];
    const isRoot = typeof process.geteuid === 'function' && process.geteuid() === 0;
    const candidate = ['unshare', ...(isRoot ? [] : ['--user', '--map-current-user']), ...ns];
    const probe = spawnSync(candidate[0] as string, [...candidate.slice(1), 'true'], {
      stdio: 'ignore',
      timeout: PID_NAMESPACE_PROBE_TIMEOUT_MS,
    });
    if (probe.status === 0) prefix = candidate;
  }
  cached = { prefix };
  return prefix;
}
