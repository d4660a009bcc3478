/** Run a child process to completion (bounded), capturing its output. For tests only. */
import { spawn, type SpawnOptions } from 'node:child_process';
import { resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..');

export interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runChild(cmd: string, args: readonly string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<ChildResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child ${cmd} timed out; stderr: ${stderr.slice(0, 2000)}`));
    }, options.timeoutMs ?? 20_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A minimal environment for a child that must find credentials only where the test put
 * them: no ~/.aws or gcloud config (HOME is an empty dir), no instance metadata.
 */
export function isolatedEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    AWS_CONFIG_FILE: `${home}/no-aws-config`,
    AWS_SHARED_CREDENTIALS_FILE: `${home}/no-aws-credentials`,
    AWS_EC2_METADATA_DISABLED: 'true',
    CLOUDSDK_CONFIG: `${home}/no-gcloud`,
    NO_GCE_CHECK: 'false',
    ...extra,
  };
}

/** Child script: the real AWS SDK default credential chain; prints one JSON line. */
export const AWS_CHAIN_SCRIPT = `
const { defaultProvider } = require('@aws-sdk/credential-provider-node');
defaultProvider({ maxRetries: 1, timeout: 1000 })().then(
  (c) => console.log(JSON.stringify({ ok: true, accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, expiration: c.expiration && c.expiration.toISOString(), accountId: c.accountId })),
  (e) => console.log(JSON.stringify({ ok: false, name: e.name, message: String(e.message) })),
);`;

/** Child script: google-auth-library's ADC (reaches the metadata server); prints one JSON line. */
export const GOOGLE_AUTH_SCRIPT = `
const { GoogleAuth } = require('google-auth-library');
const auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
Promise.all([auth.getAccessToken(), auth.getProjectId()]).then(
  ([token, project]) => console.log(JSON.stringify({ ok: true, token, project })),
  (e) => console.log(JSON.stringify({ ok: false, name: e.name, message: String(e.message) })),
);`;

export function lastJsonLine(text: string): Record<string, unknown> {
  const lines = text.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`no JSON line in: ${text.slice(0, 2000)}`);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}
