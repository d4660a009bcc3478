/**
 * "Dependency lifecycle scripts off, except reviewed ones", expressed in each package
 * manager's own terms. Pure: it computes arguments and environment, it runs nothing.
 *
 * The design (docs/install-phase.md): the install runs with scripts off for everyone
 * (the manager's CLI flag, which beats every config file, plus the environment setting,
 * which reaches nested invocations); then each allow-listed `name@version` that is
 * really installed at that version is rebuilt by the manager (`npm rebuild name@version`)
 * — which runs exactly that package's install scripts — inside the same containment and
 * scrubbed environment. A reviewed package therefore never runs with credentials either.
 */
import { StagegateError } from '../errors';
import type { PackageManager, YarnFlavor } from './detect-package-manager';

/** A reviewed package whose install scripts may run: exact name and exact version. */
export interface AllowScriptsEntry {
  readonly name: string;
  readonly version: string;
}

/** One command to run after the install, for one allow-listed package. */
export interface RebuildStep {
  readonly entry: AllowScriptsEntry;
  readonly command: string;
  readonly args: readonly string[];
  /** Variables to set (on top of the scrubbed environment) for this step only. */
  readonly setEnv: Readonly<Record<string, string>>;
}

/** Result of {@link planScriptsPolicy}. */
export interface ScriptsPlan {
  /** The install's arguments with the scripts-off flag added (before any `--`). */
  readonly installArgs: string[];
  /** Variables to set for the install (after removing {@link SCRIPT_ENABLING_ENV}). */
  readonly setEnv: Readonly<Record<string, string>>;
  /** Human-readable list of the mechanisms that turn scripts off, for the report. */
  readonly disabledBy: string[];
  /** One step per allow-listed entry, in the order given. */
  readonly rebuildSteps: RebuildStep[];
}

/**
 * Environment names (compared lower-case) that could turn scripts back on or widen an
 * allow-list behind our back; they are removed from the install's environment.
 */
export const SCRIPT_ENABLING_ENV: readonly string[] = [
  'npm_config_ignore_scripts',
  'npm_config_allow_scripts',
  'npm_config_dangerously_allow_all_scripts',
  'npm_config_only_built_dependencies',
  'npm_config_only_built_dependencies_file',
  'yarn_enable_scripts',
];

const NAME = '(?:@[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*';
const EXACT_VERSION = '\\d+\\.\\d+\\.\\d+(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?';
const ENTRY = new RegExp(`^(${NAME})@(${EXACT_VERSION})$`);

/**
 * Parse `name@version` (exact version: a range would let a later, unreviewed release run).
 * @throws StagegateError `INVALID_REQUEST` when the entry is not `name@x.y.z`.
 * @example parseAllowScriptsEntry('@scope/pkg@1.2.3') // { name: '@scope/pkg', version: '1.2.3' }
 */
export function parseAllowScriptsEntry(entry: string): AllowScriptsEntry {
  const m = ENTRY.exec(entry);
  if (!m || m[1] === undefined || m[2] === undefined) {
    throw new StagegateError('INVALID_REQUEST', 'allow-scripts entries must be name@exact-version (no ranges, no tags)', {
      details: { entry },
    });
  }
  return { name: m[1], version: m[2] };
}

/** Arguments that would turn scripts back on; rejected rather than silently overridden. */
const REENABLING_ARGS = [/^--no-ignore-scripts$/, /^--ignore-scripts=(false|0|no)$/i, /^--dangerously-allow-all-scripts/, /^--allow-scripts/, /^--enable-scripts/];

/** Inputs of {@link planScriptsPolicy}. */
export interface ScriptsPolicyInput {
  readonly manager: PackageManager;
  /** From `detectPackageManager(...).invocation`. */
  readonly invocation: readonly string[];
  /** Only used for yarn; default `classic`. */
  readonly yarnFlavor?: YarnFlavor;
  /** The install command's arguments after the invocation words. */
  readonly args: readonly string[];
  readonly allowScripts: readonly AllowScriptsEntry[];
}

/**
 * Compute how scripts are turned off for this manager and how allow-listed ones run.
 * @throws StagegateError `INVALID_REQUEST` when `args` re-enable scripts, or when an
 *   allow-list is given for a command whose package manager is unknown.
 */
export function planScriptsPolicy(input: ScriptsPolicyInput): ScriptsPlan {
  const { manager, invocation, args, allowScripts } = input;
  const dashDash = args.indexOf('--');
  const own = dashDash === -1 ? args : args.slice(0, dashDash);
  for (const arg of own) {
    if (REENABLING_ARGS.some((re) => re.test(arg))) {
      throw new StagegateError('INVALID_REQUEST', 'install arguments must not re-enable lifecycle scripts; use allow-scripts entries instead', {
        details: { argument: arg.split('=')[0] },
      });
    }
  }
  // Both variables always: they reach package managers started *by* the install (git
  // dependencies are prepared by a nested `npm install`; a script may call yarn).
  const setEnv: Record<string, string> = { npm_config_ignore_scripts: 'true', YARN_ENABLE_SCRIPTS: 'false' };
  const envMechanisms = ['env npm_config_ignore_scripts=true', 'env YARN_ENABLE_SCRIPTS=false'];
  const insert = (flag: string): string[] => (dashDash === -1 ? [...args, flag] : [...args.slice(0, dashDash), flag, ...args.slice(dashDash)]);
  const [command, ...prefix] = invocation;
  const flavor = input.yarnFlavor ?? 'classic';

  switch (manager) {
    case 'npm':
    case 'pnpm':
      return {
        installArgs: insert('--ignore-scripts'),
        setEnv,
        disabledBy: ['--ignore-scripts', ...envMechanisms],
        rebuildSteps: allowScripts.map((entry) => {
          // npm matches name@version itself; for pnpm the version was checked on disk.
          const spec = manager === 'npm' ? `${entry.name}@${entry.version}` : entry.name;
          const flag = manager === 'npm' ? '--ignore-scripts=false' : '--config.ignore-scripts=false';
          return { entry, command: must(command), args: [...prefix, 'rebuild', spec, flag], setEnv };
        }),
      };
    case 'yarn':
      if (flavor === 'berry') {
        // Berry rejects unknown flags, so no --ignore-scripts; YARN_* env beats .yarnrc.yml.
        return {
          installArgs: [...args],
          setEnv,
          disabledBy: envMechanisms,
          rebuildSteps: allowScripts.map((entry) => ({
            entry,
            command: must(command),
            args: [...prefix, 'rebuild', entry.name],
            setEnv: { ...setEnv, YARN_ENABLE_SCRIPTS: 'true' },
          })),
        };
      }
      // Yarn classic has no `rebuild`; its node_modules layout is npm's, so npm rebuilds.
      return {
        installArgs: insert('--ignore-scripts'),
        setEnv,
        disabledBy: ['--ignore-scripts', ...envMechanisms],
        rebuildSteps: allowScripts.map((entry) => ({
          entry,
          command: 'npm',
          args: ['rebuild', `${entry.name}@${entry.version}`, '--ignore-scripts=false'],
          setEnv,
        })),
      };
    case 'unknown':
      if (allowScripts.length > 0) {
        throw new StagegateError('INVALID_REQUEST', 'allow-scripts needs an npm, pnpm or yarn command', { details: {} });
      }
      return { installArgs: [...args], setEnv, disabledBy: envMechanisms, rebuildSteps: [] };
  }
}

function must(command: string | undefined): string {
  if (command === undefined) throw new TypeError('invocation must name the package manager command');
  return command;
}
