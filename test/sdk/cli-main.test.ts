/** The `stagegate` dispatcher and `run`'s usage errors, from the built CLI (npm run build first). */
import { existsSync } from 'node:fs';
import { CLI } from '../harness/broker';
import { runChild } from './run-child';

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
});

const cli = (args: string[], env: Record<string, string> = {}) =>
  runChild(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });

describe('stagegate (dispatcher)', () => {
  it('prints help and version, and rejects unknown commands with exit 2', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/run +open a stage/);
    const version = await cli(['--version']);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('`run` loads nothing heavy: no koa, jose, pino, zod or cloud SDK', async () => {
    const r = await runChild(process.execPath, ['-e', `require(${JSON.stringify(CLI.replace(/main\.js$/, 'run.js'))}); console.log(JSON.stringify(Object.keys(require.cache)))`]);
    const loaded = JSON.parse(r.stdout) as string[];
    const heavy = loaded.filter((p) => /node_modules\/(koa|@koa|jose|pino|zod|@aws-sdk|google-auth-library|@google-cloud|node-vault|better-sqlite3|pg)\//.test(p));
    expect(heavy).toEqual([]);
    expect(loaded.some((p) => p.includes('node_modules'))).toBe(false);
  });
});

describe('stagegate run usage errors (exit 2, nothing opened)', () => {
  it.each([
    [['run', '--', 'true'], /--stage NAME is required/],
    [['run', '--stage', 'deploy'], /no command/],
    [['run', '--stage', 'deploy', '--deliver', 'carrier-pigeon', '--', 'true'], /--deliver must be/],
    [['run', '--stage', 'deploy', '--artifact', 'md5:abc', '--', 'true'], /--artifact must be/],
    [['run', '--stage', 'deploy', '--bogus', '--', 'true'], /Unknown option '--bogus'/],
    [['run', '--stage', 'deploy', '--evidence', '/nonexistent.json', '--', 'true'], /cannot read evidence file/],
  ])('%j', async (args, message) => {
    const r = await cli(args, { STAGEGATE_BROKER_URL: 'http://127.0.0.1:9' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('without a broker URL', async () => {
    const r = await cli(['run', '--stage', 'deploy', '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/STAGEGATE_BROKER_URL/);
  });
});
