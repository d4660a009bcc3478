/**
 * Which package manager an install command runs, so that its own setting for "no
 * lifecycle scripts" can be applied (npm, pnpm and yarn each have a different one).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/** The package managers whose scripts setting stagegate knows. */
export type PackageManager = 'npm' | 'pnpm' | 'yarn' | 'unknown';

/** Yarn 1 (classic, `--ignore-scripts`) or Yarn 2+ (berry, `enableScripts: false`). */
export type YarnFlavor = 'classic' | 'berry';

/** Result of {@link detectPackageManager}. */
export interface DetectedPackageManager {
  readonly manager: PackageManager;
  /**
   * The words that start this package manager, to run another of its commands (the
   * rebuild of allow-listed packages) the same way: `['npm']`, `['corepack', 'pnpm']`,
   * `['node', '/x/npm-cli.js']`. Empty for `unknown`.
   */
  readonly invocation: readonly string[];
}

const BY_NAME: Record<string, Exclude<PackageManager, 'unknown'>> = {
  npm: 'npm',
  'npm-cli': 'npm',
  pnpm: 'pnpm',
  yarn: 'yarn',
  yarnpkg: 'yarn',
};

/**
 * Detect the package manager from the command line. Pure.
 *
 * Recognises `npm …`, `pnpm …`, `yarn …` (also `yarnpkg`, Windows `.cmd`/`.exe` shims and
 * absolute paths), `corepack npm|pnpm|yarn …`, and `node /path/npm-cli.js|pnpm.cjs|yarn.js …`.
 * `npx`/`pnpx`/`pnpm dlx` run arbitrary packages and are not installs: `unknown`.
 * @example
 * detectPackageManager('corepack', ['pnpm', 'install']) // { manager: 'pnpm', invocation: ['corepack', 'pnpm'] }
 */
export function detectPackageManager(command: string, args: readonly string[] = []): DetectedPackageManager {
  const own = managerOf(command);
  if (own) return { manager: own, invocation: [command] };
  const first = args[0];
  const launcher = stem(command);
  if (first !== undefined && (launcher === 'corepack' || launcher === 'node' || launcher === 'nodejs')) {
    const inner = managerOf(first);
    if (inner) return { manager: inner, invocation: [command, first] };
  }
  return { manager: 'unknown', invocation: [] };
}

/**
 * Yarn flavor of a project: berry when `package.json#packageManager` says `yarn@2+` or a
 * `.yarnrc.yml` exists (only berry reads it), classic otherwise. Reads files in `cwd`.
 */
export function detectYarnFlavor(cwd: string): YarnFlavor {
  try {
    const pkg = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as { packageManager?: unknown };
    if (typeof pkg.packageManager === 'string') {
      const m = /^yarn@(\d+)/.exec(pkg.packageManager);
      if (m) return Number(m[1]) >= 2 ? 'berry' : 'classic';
    }
  } catch {
    // no or unreadable package.json: fall through to the rc-file check
  }
  return existsSync(join(cwd, '.yarnrc.yml')) ? 'berry' : 'classic';
}

function stem(path: string): string {
  return basename(path.replace(/\\/g, '/')).replace(/\.(cmd|exe|bat|ps1|c?js|mjs)$/i, '').toLowerCase();
}

function managerOf(path: string): Exclude<PackageManager, 'unknown'> | undefined {
  return BY_NAME[stem(path)];
}
