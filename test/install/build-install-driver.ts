/**
 * Compile `sdk/install` (and what it imports) to plain JavaScript in a temp folder, plus a
 * driver script, so tests can run `runContainedInstall` inside a *separate* process —
 * the way `stagegate install` runs: with the job's secrets in its real environment
 * (`/proc/PID/environ`), and able to receive SIGINT/SIGTERM.
 *
 * Driver usage: `node driver.js OPTIONS_JSON RESULT_PATH`; it calls
 * `runContainedInstall({ ...OPTIONS, env: process.env })` and writes the result as JSON.
 */
import { transformFileSync } from '@swc/core';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

export function buildInstallDriver(outDir: string): string {
  const files = [join('sdk', 'errors.ts'), ...readdirSync(join(ROOT, 'sdk', 'install')).filter((f) => f.endsWith('.ts')).map((f) => join('sdk', 'install', f))];
  for (const rel of files) {
    const { code } = transformFileSync(join(ROOT, rel), {
      jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
      module: { type: 'commonjs' },
      swcrc: false,
    });
    const out = join(outDir, rel.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, code);
  }
  const driver = join(outDir, 'driver.js');
  writeFileSync(
    driver,
    [
      "'use strict';",
      "const fs = require('node:fs');",
      "const { runContainedInstall } = require('./sdk/install/index.js');",
      'const options = JSON.parse(process.argv[2]);',
      'runContainedInstall({ ...options, env: process.env }).then(',
      '  (r) => fs.writeFileSync(process.argv[3], JSON.stringify(r)),',
      '  (e) => fs.writeFileSync(process.argv[3], JSON.stringify({ thrown: { code: e.code, message: e.message } })),',
      ');',
    ].join('\n'),
  );
  return driver;
}
