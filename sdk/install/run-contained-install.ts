/**
 * The process side of `stagegate install -- CMD ARGS…`: run the dependency install with
 * no credentials in reach, no unreviewed lifecycle scripts, and nothing left running
 * afterwards. The broker side (the install lock) is the caller's: open the install phase
 * before calling this, close it after it resolves.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { detectPackageManager, detectYarnFlavor, type PackageManager, type YarnFlavor } from './detect-package-manager';
import { findInstalledVersions } from './find-installed-versions';
import { parseAllowScriptsEntry, planScriptsPolicy, SCRIPT_ENABLING_ENV, type RebuildStep } from './plan-scripts-policy';
import { runContained, type Containment, type ContainedStdio } from './run-contained';
import { scrubEnvironment } from './scrub-environment';

/** Options of {@link runContainedInstall}. */
export interface ContainedInstallOptions {
  /** The package manager command: `npm`, `pnpm`, `yarn`, `corepack`, or anything else. */
  readonly command: string;
  readonly args: readonly string[];
  /** Project directory. Default `process.cwd()`. */
  readonly cwd?: string;
  /** The parent environment to scrub (e.g. `process.env`). Never modified. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Names kept despite the scrub rules (`NAME` or `PREFIX*`). Default none. */
  readonly keep?: readonly string[];
  /** Reviewed packages whose install scripts run, as `name@exact-version`. Default none. */
  readonly allowScripts?: readonly string[];
  /** Standard streams of every step. Default `inherit`. */
  readonly stdio?: ContainedStdio;
  /** `auto` (default) or `marker+pgid` to refuse the cgroup (tests, diagnosis). */
  readonly containment?: 'auto' | 'marker+pgid';
  /** `auto` (default) or `off`. */
  readonly pidNamespace?: 'auto' | 'off';
  /** Forward SIGINT/SIGTERM of this process to the running step. Default true. */
  readonly forwardSignals?: boolean;
  /** Called when each step's process has started (`step` is `install` or `rebuild name@version`). */
  readonly onStarted?: (child: ChildProcess, step: string) => void;
}

/** What happened to scripts. Names and versions only. */
export interface ScriptsPolicyReport {
  readonly manager: PackageManager;
  readonly yarnFlavor?: YarnFlavor;
  /** The mechanisms that turned scripts off (`--ignore-scripts`, `env …`). */
  readonly disabledBy: string[];
  /** The allow-list as given (`name@version`). */
  readonly allowed: string[];
  /** Allow-listed packages whose scripts ran and exited 0. */
  readonly ranAllowed: string[];
  /** Allow-listed packages not run, with the reason (not installed at that version, step failed). */
  readonly skippedAllowed: { readonly entry: string; readonly reason: string }[];
}

/** Result of {@link runContainedInstall}. */
export interface InstallResult {
  /** Exit code of the install (or of the first failed rebuild step); `null` when a signal ended it. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** SIGINT/SIGTERM this process received and forwarded; the CLI should exit accordingly. */
  readonly forwardedSignal: NodeJS.Signals | null;
  /** Environment names removed (sorted). Never values. */
  readonly removedEnv: string[];
  readonly scriptsPolicy: ScriptsPolicyReport;
  /** Processes still running after a step ended, all killed (summed over the steps). */
  readonly leftoversKilled: number;
  /** The weakest containment used by any step. */
  readonly containment: Containment;
  /** True when every step ran in its own PID namespace (ancestors' `/proc` invisible). */
  readonly pidNamespace: boolean;
  readonly cgroupUnavailableReason?: string;
}

const STRENGTH: Record<Containment, number> = { cgroup: 2, 'marker+pgid': 1, pgid: 0 };

/**
 * Run a dependency install contained: scrubbed environment, lifecycle scripts off except
 * the allow-list (run afterwards by the package manager's rebuild, in the same
 * containment), own session/process group/cgroup/PID namespace, and every process it
 * started killed before this resolves.
 *
 * @throws StagegateError `INVALID_REQUEST` for a malformed allow-list entry, an argument
 *   that re-enables scripts, or an allow-list with an unknown package manager. A failing
 *   install is not thrown: it is `exitCode`/`signal` in the result.
 * @example
 * const r = await runContainedInstall({ command: 'npm', args: ['ci'], env: process.env,
 *   allowScripts: ['better-sqlite3@12.11.1'] });
 * process.exitCode = r.signal ? 128 + os.constants.signals[r.signal] : r.exitCode ?? 1;
 */
export async function runContainedInstall(options: ContainedInstallOptions): Promise<InstallResult> {
  const cwd = options.cwd ?? process.cwd();
  const allowed = (options.allowScripts ?? []).map(parseAllowScriptsEntry);
  const detected = detectPackageManager(options.command, options.args);
  const yarnFlavor = detected.manager === 'yarn' ? detectYarnFlavor(cwd) : undefined;
  const plan = planScriptsPolicy({
    manager: detected.manager,
    invocation: detected.invocation,
    args: options.args,
    allowScripts: allowed,
    ...(yarnFlavor ? { yarnFlavor } : {}),
  });
  const { env: scrubbed, removed } = scrubEnvironment(options.env, options.keep ?? []);
  const baseEnv = withoutScriptEnabling(scrubbed);
  const marker = randomBytes(16).toString('hex');
  const common = {
    cwd,
    marker,
    ...(options.stdio ? { stdio: options.stdio } : {}),
    ...(options.containment ? { containment: options.containment } : {}),
    ...(options.pidNamespace ? { pidNamespace: options.pidNamespace } : {}),
    ...(options.forwardSignals !== undefined ? { forwardSignals: options.forwardSignals } : {}),
  };

  const install = await runContained({
    ...common,
    command: options.command,
    args: plan.installArgs,
    env: { ...baseEnv, ...plan.setEnv },
    ...(options.onStarted ? { onStarted: (c: ChildProcess) => options.onStarted?.(c, 'install') } : {}),
  });
  let exitCode = install.exitCode;
  let signal = install.signal;
  let forwardedSignal = install.forwardedSignal;
  let leftoversKilled = install.leftoversKilled;
  let containment = install.containment;
  let pidNamespace = install.pidNamespace;
  let cgroupUnavailableReason = install.cgroupUnavailableReason;
  const ranAllowed: string[] = [];
  const skippedAllowed: { entry: string; reason: string }[] = [];

  const installOk = exitCode === 0 && signal === null && forwardedSignal === null;
  for (const step of plan.rebuildSteps) {
    const label = `${step.entry.name}@${step.entry.version}`;
    if (!installOk || forwardedSignal !== null) {
      skippedAllowed.push({ entry: label, reason: 'install did not succeed' });
      continue;
    }
    if (!findInstalledVersions(cwd, step.entry.name).includes(step.entry.version)) {
      skippedAllowed.push({ entry: label, reason: 'not installed at this version' });
      continue;
    }
    const r = await runRebuild(step, common, baseEnv, options, label);
    leftoversKilled += r.leftoversKilled;
    pidNamespace = pidNamespace && r.pidNamespace;
    if (STRENGTH[r.containment] < STRENGTH[containment]) {
      containment = r.containment;
      cgroupUnavailableReason = r.cgroupUnavailableReason;
    }
    if (r.forwardedSignal !== null) forwardedSignal = r.forwardedSignal;
    if (r.exitCode === 0 && r.signal === null) {
      ranAllowed.push(label);
    } else {
      skippedAllowed.push({ entry: label, reason: r.signal ? `scripts ended by ${r.signal}` : `scripts exited ${r.exitCode}` });
      // The install as a whole failed: the caller must not go on as if the package were built.
      exitCode = r.exitCode;
      signal = r.signal;
      break;
    }
  }

  return {
    exitCode,
    signal,
    forwardedSignal,
    removedEnv: removed,
    scriptsPolicy: {
      manager: detected.manager,
      ...(yarnFlavor ? { yarnFlavor } : {}),
      disabledBy: plan.disabledBy,
      allowed: allowed.map((a) => `${a.name}@${a.version}`),
      ranAllowed,
      skippedAllowed,
    },
    leftoversKilled,
    containment,
    pidNamespace,
    ...(cgroupUnavailableReason !== undefined && containment !== 'cgroup' ? { cgroupUnavailableReason } : {}),
  };
}

function runRebuild(
  step: RebuildStep,
  common: Omit<Parameters<typeof runContained>[0], 'command' | 'args' | 'env'>,
  baseEnv: Record<string, string>,
  options: ContainedInstallOptions,
  label: string,
): ReturnType<typeof runContained> {
  return runContained({
    ...common,
    command: step.command,
    args: step.args,
    env: { ...baseEnv, ...step.setEnv },
    ...(options.onStarted ? { onStarted: (c: ChildProcess) => options.onStarted?.(c, `rebuild ${label}`) } : {}),
  });
}

function withoutScriptEnabling(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (!SCRIPT_ENABLING_ENV.includes(k.toLowerCase())) out[k] = v;
  return out;
}
