/**
 * Starts a real broker (in process, real HTTP on 127.0.0.1:0) with a real OIDC issuer
 * beside it, or as a child process (`startBrokerProcess`) for crash tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { stringify } from 'yaml';
import { buildConfig } from '../../broker/config/load-config';
import { startBroker, type RunningBroker, type StartBrokerOptions } from '../../broker/start-broker';
import { startFakeOidcIssuer, type FakeOidcIssuer, type SignOptions } from '../fakes/oidc-issuer';
import { createCapturedLogger, type CapturedLogger } from './capture-logger';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'sdk', 'cli', 'main.js');
export const BROKER_MAIN = join(REPO_ROOT, 'dist', 'broker', 'main.js');

export type ConfigObject = Record<string, any>;

/** Claims of a GitHub Actions-like token for a fresh build (a new run_id each call). */
export function buildClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'repo:acme/web:ref:refs/heads/main',
    repository: 'acme/web',
    repository_owner: 'acme',
    ref: 'refs/heads/main',
    sha: '0123456789abcdef0123456789abcdef01234567',
    workflow: 'release',
    run_id: String(Math.floor(Math.random() * 1e12)),
    run_attempt: '1',
    ...overrides,
  };
}

/** A default config: issuer `ci` (the fake), the dev provider, and a rule with several stages. */
export function defaultConfig(issuer: FakeOidcIssuer, dbPath: string): ConfigObject {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    store: { sqlite: { path: dbPath } },
    logging: { level: 'debug' },
    reaper: { intervalMs: 100, revokeBackoffInitialMs: 50, revokeBackoffMaxMs: 200 },
    issuers: [{ name: 'ci', issuer: issuer.issuer, jwksUri: issuer.jwksUri, audience: 'stagegate', buildKey: '{repository}/{run_id}/{run_attempt}' }],
    providers: { dev: { type: 'dev' } },
    rules: [
      {
        name: 'web-main',
        issuer: 'ci',
        claims: { repository: 'acme/web', ref: 'refs/heads/main' },
        stages: {
          install: { phase: 'install', ttl: '10m', heartbeat: '5s' },
          deploy: {
            ttl: '15m',
            heartbeat: '30s',
            grants: [
              { name: 'deployer', provider: 'dev', kind: 'aws', scope: ['deploy'] },
              { name: 'gcp', provider: 'dev', kind: 'gcp-access-token' },
              { name: 'db', provider: 'dev', kind: 'secret', values: ['username', 'password'] },
            ],
          },
          publish: { ttl: '5m', heartbeat: '2s', grants: [{ name: 'npm', provider: 'dev', kind: 'secret', values: ['token'] }] },
          guarded: { requireInstallPhase: true, grants: [{ name: 'deployer', provider: 'dev', kind: 'aws' }] },
          flaky: {
            grants: [
              { name: 'ok', provider: 'dev', kind: 'aws' },
              { name: 'down', provider: 'dev', kind: 'aws', failIssue: 'unavailable' },
            ],
          },
          repeatable: { once: false, grants: [{ name: 'deployer', provider: 'dev', kind: 'aws' }] },
        },
      },
    ],
  };
}

export interface TestBroker {
  readonly url: string;
  readonly broker: RunningBroker;
  readonly issuer: FakeOidcIssuer;
  readonly log: CapturedLogger;
  readonly dbPath: string;
  readonly dir: string;
  mintToken(claims?: Record<string, unknown>, options?: SignOptions): Promise<string>;
  close(): Promise<void>;
}

export interface TestBrokerOptions extends Omit<StartBrokerOptions, 'logger'> {
  /** Change the default config before it is validated. */
  readonly configure?: (config: ConfigObject) => ConfigObject | void;
  /** Reuse an issuer (e.g. across a restart). */
  readonly issuer?: FakeOidcIssuer;
  readonly dir?: string;
}

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const issuer = options.issuer ?? (await startFakeOidcIssuer());
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'stagegate-test-'));
  const dbPath = join(dir, 'broker.db');
  const cfg = defaultConfig(issuer, dbPath);
  const configured = options.configure?.(cfg) ?? cfg;
  const loaded = buildConfig(configured, dir);
  const log = createCapturedLogger();
  const broker = await startBroker(loaded, { ...options, logger: log.logger });
  return {
    url: broker.url,
    broker,
    issuer,
    log,
    dbPath,
    dir,
    mintToken: (claims = buildClaims(), o) => issuer.sign(claims, o),
    async close() {
      await broker.close();
      if (!options.issuer) await issuer.close();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** JSON over HTTP to the broker, returning status and parsed body. */
export async function call(
  url: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any; text: string }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  const res = await fetch(`${url}${path}`, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

export interface BrokerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly configPath: string;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Start `node dist/broker/main.js --config <file>` as a child process; resolves once it listens. */
export async function startBrokerProcess(config: ConfigObject, dir: string): Promise<BrokerProcess> {
  const configPath = join(dir, `broker-${randomUUID().slice(0, 8)}.yaml`);
  writeFileSync(configPath, stringify(config));
  const child = spawn(process.execPath, [BROKER_MAIN, '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`broker did not start: ${out}`)), 15_000);
    const onData = () => {
      const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    };
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`broker exited with ${code}: ${out}`));
    });
  });
  return {
    url,
    child,
    configPath,
    output: () => out,
    kill: (signal = 'SIGKILL') =>
      new Promise<void>((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res();
        child.once('exit', () => res());
        child.kill(signal);
      }),
  };
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
