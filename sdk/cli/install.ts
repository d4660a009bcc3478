/**
 * `stagegate install [options] -- CMD ARGS…`
 *
 * resolve the identity token → open the build's install phase at the broker (the install
 * lock: from now on the broker issues nothing to this build) → heartbeat it → run CMD with
 * `runContainedInstall` (scrubbed environment, lifecycle scripts off except reviewed
 * `name@version`s, own cgroup / PID namespace / session) → once it has resolved, i.e. once
 * every process the install started is dead, close the install phase with CMD's exit code
 * → report what was scrubbed, the scripts policy, the containment, the leftovers killed →
 * exit with CMD's status.
 *
 * The order is the security property: the lock is taken before any untrusted code runs
 * and released only after the last of its processes is gone, so a daemon left behind by
 * a lifecycle script never sees the build's stages open (docs/threat-model.md, Install
 * phase). The identity token is resolved before CMD starts and is never given to it (the
 * `ACTIONS_*`, `STAGEGATE_*` and token variables are scrubbed from its environment).
 *
 * Exit status: CMD's (a signal CMD died of is re-raised; a SIGINT/SIGTERM/SIGHUP we
 * received and forwarded gives 128 + its number); {@link EXIT_USAGE} (2) for a usage
 * mistake; {@link EXIT_STAGE_NOT_OPENED} (125) when the install phase could not be opened
 * (CMD never ran) or the broker lost it while CMD ran (CMD was killed); 126/127 when CMD
 * cannot be executed / found — the same codes as `stagegate run`.
 */
import { constants as osConstants } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { createStagegateClient, type OpenedStage, type StagegateClient } from '../client';
import { StagegateError, isStagegateError } from '../errors';
import { startStageHeartbeat } from '../heartbeat';
import { identityTokenSourcesFromEnv, resolveIdentityToken, type IdentityTokenSources } from '../identity-token';
import { detectPackageManager, detectYarnFlavor } from '../install/detect-package-manager';
import { parseAllowScriptsEntry, planScriptsPolicy } from '../install/plan-scripts-policy';
import { runContainedInstall, type InstallResult } from '../install/run-contained-install';
import { scrubEnvironment } from '../install/scrub-environment';
import { DEFAULT_CLI_TIMEOUT_MS, EXIT_STAGE_NOT_OPENED, EXIT_USAGE, parseCommandLine, resolveBrokerUrl, resolveTimeoutMs, usage } from './config';
import { createReporter, type Reporter } from './output';

/** Stage name of the install phase when `--stage` is not given. */
export const DEFAULT_INSTALL_STAGE = 'install';

/** Signals we trap for the whole command; SIGINT/SIGTERM are forwarded by `runContainedInstall`, SIGHUP by us. */
const TRAPPED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export const INSTALL_USAGE = `Usage: stagegate install [options] -- CMD [ARGS...]

Run the dependency install CMD as the build's install phase: the broker issues nothing to
this build while it runs; CMD gets a scrubbed environment (no credentials, no identity),
lifecycle scripts off except reviewed name@version entries, and every process it started
is killed before the install phase is closed.

Options:
  --stage NAME                 install-phase stage in policy (default: install)
  --keep NAME                  keep a variable the scrub would remove (NAME or PREFIX*); repeatable
  --allow-scripts NAME@X.Y.Z   run this exact package version's install scripts (contained); repeatable
  --broker URL                 broker URL (default: STAGEGATE_BROKER_URL)
  --identity-token-file FILE   identity token file (default: STAGEGATE_IDENTITY_TOKEN_FILE,
                               STAGEGATE_IDENTITY_TOKEN, GitHub Actions OIDC, GitLab STAGEGATE_ID_TOKEN)
  --json                       JSON lines on stderr instead of human lines
  -h, --help                   this help

Exit status: CMD's (or CMD's signal re-raised; 128+N after forwarding signal N); 2 usage;
125 install phase not opened (CMD did not run) or lost at the broker (CMD was killed);
126 CMD not executable; 127 CMD not found.`;

/** Parsed `stagegate install` arguments and environment. */
export interface InstallConfig {
  readonly help: boolean;
  readonly stage: string;
  /** `--keep` entries (names or `PREFIX*`). */
  readonly keep: readonly string[];
  /** `--allow-scripts` entries, validated as `name@x.y.z`. */
  readonly allowScripts: readonly string[];
  readonly brokerUrl: string;
  readonly identity: IdentityTokenSources;
  readonly json: boolean;
  /** Bound on each broker request, in milliseconds (`STAGEGATE_TIMEOUT_MS`, default {@link DEFAULT_CLI_TIMEOUT_MS}). */
  readonly timeoutMs: number;
  readonly command: readonly string[];
  /** The environment the install is scrubbed from (the CLI's own). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}


/**
 * Parse and check `stagegate install` arguments against an environment, before anything is
 * opened: a mistake found after the install phase was opened would burn the build's
 * once-only install stage for nothing.
 *
 * @throws StagegateError `CONFIG_INVALID` (bad flag, no command, bad broker URL) or
 *   `INVALID_REQUEST` (an allow-scripts entry that is not `name@x.y.z`, install arguments
 *   that re-enable scripts, an allow-list for a command that is not npm/pnpm/yarn).
 * @example
 * ```ts
 * const config = loadInstallConfig(['--allow-scripts', 'esbuild@0.25.0', '--', 'npm', 'ci']);
 * ```
 */
export function loadInstallConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd: string = process.cwd(),
): InstallConfig {
  const { values, positionals, command } = parseCommandLine(argv, {
        stage: { type: 'string' },
        keep: { type: 'string', multiple: true },
        'allow-scripts': { type: 'string', multiple: true },
        broker: { type: 'string' },
        'identity-token-file': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      });
  const help = values.help === true;
  const json = values.json === true;
  if (help) {
    return { help, json, stage: DEFAULT_INSTALL_STAGE, keep: [], allowScripts: [], brokerUrl: '', identity: {}, timeoutMs: DEFAULT_CLI_TIMEOUT_MS, command: [], env, cwd };
  }
  if (positionals.length > 0) throw usage(`unexpected argument before "--": ${JSON.stringify(positionals[0])}`);
  if (command.length === 0 || command[0] === '') throw usage('no command: put it after "--", e.g. stagegate install -- npm ci');
  const stage = (values.stage as string | undefined) ?? DEFAULT_INSTALL_STAGE;
  if (stage === '') throw usage('--stage must not be empty', '--stage');

  const keep = (values.keep as string[] | undefined) ?? [];
  if (keep.some((k) => k === '' || k === '*')) throw usage('--keep takes a variable name or PREFIX* (keeping everything would undo the scrub)', '--keep');
  const allowScripts = (values['allow-scripts'] as string[] | undefined) ?? [];
  const [cmd, ...args] = command as [string, ...string[]];
  // Same checks runContainedInstall makes, made now, before the install phase opens.
  const allowed = allowScripts.map(parseAllowScriptsEntry);
  const detected = detectPackageManager(cmd, args);
  planScriptsPolicy({
    manager: detected.manager,
    invocation: detected.invocation,
    args,
    allowScripts: allowed,
    ...(detected.manager === 'yarn' ? { yarnFlavor: detectYarnFlavor(cwd) } : {}),
  });

  const brokerUrl = resolveBrokerUrl(values.broker as string | undefined, env);

  const timeoutMs = resolveTimeoutMs(env);

  return {
    help,
    json,
    stage,
    keep,
    allowScripts,
    brokerUrl,
    identity: identityTokenSourcesFromEnv(env, { tokenFile: values['identity-token-file'] as string | undefined }),
    timeoutMs,
    command,
    env,
    cwd,
  };
}

/** What `stagegate install` reports; names and facts only, never a value of the environment. */
interface InstallReporter extends Pick<Reporter, 'warn' | 'error'> {
  opened(opened: OpenedStage): void;
  environment(removed: readonly string[], kept: readonly string[]): void;
  result(r: InstallResult): void;
  closed(stageId: string, state: string, exit: { code?: number; signal?: string }): void;
}

function createInstallReporter(json: boolean, write: (s: string) => void): InstallReporter {
  const base = createReporter({ json, write });
  const human = (text: string) => write(`stagegate: ${text}\n`);
  const event = (name: string, fields: Record<string, unknown>) => write(`${JSON.stringify({ stagegate: name, ...fields })}\n`);
  return {
    warn: base.warn,
    error: base.error,
    opened(o) {
      if (json) {
        return event('install.opened', { stageId: o.stageId, stage: o.stage, build: o.build, rule: o.rule, phase: o.phase, expiresAt: o.expiresAt, heartbeatSeconds: o.heartbeatSeconds });
      }
      human(`install phase opened (stage ${o.stage}, id ${o.stageId}, rule ${o.rule}, build ${o.build}): the broker issues nothing to this build until it closes`);
    },
    environment(removed, kept) {
      if (json) return event('install.environment', { removed, kept });
      human(removed.length > 0 ? `removed from the install's environment (${removed.length}): ${removed.join(', ')}` : `removed from the install's environment: nothing`);
      if (kept.length > 0) human(`kept by --keep (visible to the install and its allowed scripts): ${kept.join(', ')}`);
    },
    result(r) {
      const p = r.scriptsPolicy;
      if (json) {
        return event('install.result', {
          exitCode: r.exitCode, signal: r.signal, forwardedSignal: r.forwardedSignal, scriptsPolicy: p,
          containment: r.containment, pidNamespace: r.pidNamespace, leftoversKilled: r.leftoversKilled,
          ...(r.cgroupUnavailableReason !== undefined ? { cgroupUnavailableReason: r.cgroupUnavailableReason } : {}),
        });
      }
      human(`lifecycle scripts off (${p.manager}${p.yarnFlavor ? ` ${p.yarnFlavor}` : ''}: ${p.disabledBy.join(', ')})`);
      if (p.allowed.length > 0) {
        human(`  allowed: ${p.allowed.join(', ')}; ran: ${p.ranAllowed.length > 0 ? p.ranAllowed.join(', ') : 'none'}`);
        for (const s of p.skippedAllowed) human(`  skipped ${s.entry}: ${s.reason}`);
      }
      human(`containment ${r.containment}${r.cgroupUnavailableReason !== undefined ? ` (no cgroup: ${r.cgroupUnavailableReason})` : ''}, PID namespace ${r.pidNamespace ? 'yes' : 'no'}; ${r.leftoversKilled} leftover process${r.leftoversKilled === 1 ? '' : 'es'} killed`);
    },
    closed(stageId, state, exit) {
      if (json) return event('install.closed', { stageId, state, exit });
      human(`install phase closed (${state}) after the command ended with ${exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`}`);
    },
  };
}

/** Shared between the signal handlers and the flow. */
interface Control {
  /** The first trapped signal received, if any. */
  received: NodeJS.Signals | undefined;
  /** The process of the step running now (its pid is its process group id: it is spawned detached). */
  step: ChildProcess | undefined;
  /** The broker reports the install phase gone while CMD runs. */
  lockLost: boolean;
}

/**
 * Entry point of `stagegate install`; resolves to the process exit status.
 *
 * @example
 * ```ts
 * process.exitCode = await main(['--allow-scripts', 'esbuild@0.25.0', '--', 'npm', 'ci']);
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  const write = (s: string) => void process.stderr.write(s);
  let config: InstallConfig;
  try {
    config = loadInstallConfig(argv);
    if (config.help) {
      process.stdout.write(`${INSTALL_USAGE}\n`);
      return 0;
    }
  } catch (err) {
    createReporter({ json: argv.includes('--json'), write }).error(err);
    if (!argv.includes('--json')) write(`${INSTALL_USAGE}\n`);
    return EXIT_USAGE;
  }
  const out = createInstallReporter(config.json, write);

  const ctl: Control = { received: undefined, step: undefined, lockLost: false };
  const onSignal = (sig: NodeJS.Signals) => {
    ctl.received ??= sig;
    // SIGINT/SIGTERM reach the install through runContainedInstall's own forwarding;
    // SIGHUP (a closed terminal, a CI runner cancelling) we forward ourselves. Until the
    // install runs, noting the signal is enough: CMD is then never started.
    if (sig === 'SIGHUP' && ctl.step?.pid !== undefined) signalGroup(ctl.step.pid, 'SIGHUP');
  };
  for (const s of TRAPPED_SIGNALS) process.on(s, onSignal);
  let status: ExitStatus;
  try {
    // The identity is resolved here, once, before anything untrusted runs; the install
    // never gets it (nor the variables it came from).
    let client: StagegateClient;
    let opened: OpenedStage;
    try {
      const identityToken = await resolveIdentityToken(config.identity, { timeoutMs: config.timeoutMs });
      client = createStagegateClient({ brokerUrl: config.brokerUrl, identityToken, timeoutMs: config.timeoutMs });
      opened = await client.openStage({ stage: config.stage, phase: 'install' });
    } catch (err) {
      out.error(err);
      return EXIT_STAGE_NOT_OPENED;
    }
    // (A stage that policy names as a run stage is refused by the broker: POLICY_DENIED, reason phase.)
    out.opened(opened);
    status = await runInstallPhase(config, client, opened, out, ctl);
  } finally {
    for (const s of TRAPPED_SIGNALS) process.off(s, onSignal);
  }
  if (status.reraise) {
    // Die the way CMD died, so our parent sees the same signal (as `stagegate run` does).
    process.kill(process.pid, status.reraise);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return status.code;
}

/** How the CLI ends: an exit code (also sent to the broker), or a signal to re-raise. */
interface ExitStatus {
  readonly code: number;
  readonly reraise?: NodeJS.Signals;
}

async function runInstallPhase(config: InstallConfig, client: StagegateClient, opened: OpenedStage, out: InstallReporter, ctl: Control): Promise<ExitStatus> {
  const beat = startStageHeartbeat({
    client,
    stageId: opened.stageId,
    stageToken: opened.stageToken,
    heartbeatSeconds: opened.heartbeatSeconds,
    onError: (err) => out.warn('HEARTBEAT_FAILED', `install phase heartbeat failed (${isStagegateError(err) ? err.code : err.name}); retrying`),
    onLost: (err) => {
      // The lock is gone (reaped after missed heartbeats, TTL reached, closed by someone
      // holding the stage token): the broker may issue to this build again while untrusted
      // code runs. Stop that code now; runContainedInstall then kills what is left.
      ctl.lockLost = true;
      out.warn('INSTALL_LOCK_LOST', `the broker reports the install phase gone (${err.code}); the install is being killed`);
      if (ctl.step?.pid !== undefined) signalGroup(ctl.step.pid, 'SIGKILL');
    },
  });

  const [cmd, ...args] = config.command as [string, ...string[]];
  const removed = scrubEnvironment(config.env, config.keep).removed;
  const kept = scrubEnvironment(config.env, []).removed.filter((n) => !removed.includes(n));
  out.environment(removed, kept);

  let result: InstallResult | undefined;
  try {
    if (ctl.received === undefined) {
      result = await runContainedInstall({
        command: cmd,
        args,
        cwd: config.cwd,
        env: config.env,
        keep: config.keep,
        allowScripts: config.allowScripts,
        stdio: 'inherit',
        onStarted: (child) => {
          ctl.step = child;
          // A step that starts after the lock was lost (a rebuild after the install) dies at once.
          if (ctl.lockLost && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
        },
      });
      ctl.step = undefined;
      out.result(result);
      if (!result.pidNamespace) {
        out.warn('NO_PID_NAMESPACE', "the install ran without a PID namespace: it could read its ancestors' environments (/proc/PID/environ)");
      }
    }
  } catch (err) {
    // runContainedInstall throws only before it starts anything (checked already in
    // loadInstallConfig, so this is unexpected): nothing of the install is running.
    out.error(err);
  } finally {
    // Heartbeats stop only now: runContainedInstall resolved, so every process of the
    // install is dead. The lock is held until the close below.
    await beat.stop();
  }

  const status = statusOf(result, ctl);
  const exit = result?.signal ? { signal: result.signal } : { code: status.code };
  try {
    const closed = await client.closeStage(opened.stageId, opened.stageToken, { exitCode: status.code });
    out.closed(closed.stageId, closed.state, exit);
  } catch (err) {
    out.error(err);
    out.warn('CLOSE_FAILED', 'the install phase could not be closed; the broker closes it when its heartbeat window ends (as not clean)');
  }
  return status;
}

/** Exit status of the CLI (also sent to the broker as the install's exit code). */
function statusOf(result: InstallResult | undefined, ctl: Control): ExitStatus {
  const bySignal = (sig: NodeJS.Signals) => 128 + (osConstants.signals[sig] ?? 0);
  if (ctl.lockLost) return { code: EXIT_STAGE_NOT_OPENED };
  if (result === undefined) {
    // Not run: a signal arrived before CMD started, or an unexpected error.
    return { code: ctl.received ? bySignal(ctl.received) : EXIT_STAGE_NOT_OPENED };
  }
  if (result.signal) return { code: bySignal(result.signal), reraise: result.signal };
  // A signal we forwarded ended the install even when CMD exited "normally" on it.
  const forwarded = result.forwardedSignal ?? ctl.received;
  if (forwarded) return { code: bySignal(forwarded) };
  return { code: result.exitCode ?? 1 };
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // ESRCH: the group is gone already
  }
}
