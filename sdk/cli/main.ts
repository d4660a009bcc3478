#!/usr/bin/env node
/**
 * The `stagegate` command: a table of subcommands, each loaded only when it runs, so
 * `stagegate run` pays for the client and nothing else (no Koa, jose or cloud SDKs).
 * Each subcommand module exports `main(argv): Promise<number>`; its result becomes the
 * process exit status.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';

// Node's fetch parses HTTP with undici's llhttp, a WebAssembly module. V8 tiers it up
// with a background compile that process exit then waits for (measured here: about
// 100 ms on every `stagegate run`, a large part of its 250 ms budget). A short-lived CLI
// gains nothing from the optimised tier, so stay on the baseline compiler. Set before
// any fetch compiles the module; affects this process only.
setFlagsFromString('--liftoff-only');

/** What every subcommand module exports. */
export interface SubcommandModule {
  main(argv: string[]): Promise<number>;
}

interface Subcommand {
  readonly summary: string;
  /** Module id relative to this file (resolved lazily with `require`). */
  readonly module: string;
}

/**
 * The dispatcher table. `require` rather than `import()`: the compiled CommonJS keeps
 * `import()` as a real ESM import, which would need file extensions and go through the
 * slower ESM loader.
 */
export const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = {
  run: { summary: 'open a stage, run a command with its credentials, revoke them when it exits', module: './run' },
  install: { summary: 'run the install phase contained, with no credentials reachable', module: './install' },
  broker: { summary: 'start the broker (--config FILE)', module: '../../broker/main' },
  audit: { summary: 'inspect and verify the audit log', module: './audit' },
  verify: { summary: 'verify provenance evidence locally', module: './verify' },
};

/** Exit status for an unknown or unavailable subcommand / bad usage. */
const EXIT_USAGE = 2;

function usage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((k) => k.length));
  const lines = Object.entries(SUBCOMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: stagegate <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nOptions:\n  -h, --help     show help (stagegate <command> --help for a command)\n  -v, --version  show the version\n`;
}

function version(): string {
  // package.json sits two levels above sdk/cli in the sources and three above dist/sdk/cli.
  for (let dir = __dirname, i = 0; i < 4; i++, dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'stagegate' && pkg.version) return pkg.version;
    }
  }
  return 'unknown';
}

/**
 * Dispatch `argv` (without `node` and the script) to a subcommand.
 *
 * @example
 * ```ts
 * process.exitCode = await main(['run', '--stage', 'deploy', '--', 'make', 'deploy']);
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === '-v' || name === '--version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const sub = Object.prototype.hasOwnProperty.call(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined;
  if (!sub) {
    process.stderr.write(`stagegate: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return EXIT_USAGE;
  }
  let resolved: string;
  try {
    resolved = require.resolve(sub.module);
  } catch {
    process.stderr.write(`stagegate: the "${name}" command is not available in this build\n`);
    return EXIT_USAGE;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load, see SUBCOMMANDS
  const mod = require(resolved) as Partial<SubcommandModule>;
  if (typeof mod.main !== 'function') {
    process.stderr.write(`stagegate: the "${name}" command module has no main()\n`);
    return EXIT_USAGE;
  }
  return mod.main(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      // A subcommand is expected to report its own errors; this is the last line of
      // defence, so print the class and code only (a foreign message is not vetted).
      const code = (err as { code?: unknown } | null)?.code;
      process.stderr.write(`stagegate: unexpected ${err instanceof Error ? err.name : typeof err}${typeof code === 'string' ? ` (${code})` : ''}\n`);
      process.exitCode = 1;
    },
  );
}
