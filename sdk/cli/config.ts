/**
 * The CLI's configuration: flags and environment, read and checked once (STYLE rule 6:
 * this is the only module of the CLI that reads `process.env`). Every mistake is named by
 * its flag; bad configuration is a usage error (exit {@link EXIT_USAGE}).
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { StagegateError } from '../errors';
import { identityTokenSourcesFromEnv, type IdentityTokenSources } from '../identity-token';
import type { DeliveryMode } from '../local-endpoints/delivery-env';

/** Exit code for a usage or configuration mistake (nothing was opened). */
export const EXIT_USAGE = 2;
/** Exit code when the stage could not be opened (identity, policy, provenance, broker): the coded error is printed. */
export const EXIT_STAGE_NOT_OPENED = 125;
/** Exit code when CMD exists but cannot be executed (as in POSIX shells). */
export const EXIT_NOT_EXECUTABLE = 126;
/** Exit code when CMD is not found (as in POSIX shells). */
export const EXIT_NOT_FOUND = 127;

/** Bound on each broker request made by the CLI, in milliseconds (`STAGEGATE_TIMEOUT_MS`). */
export const DEFAULT_CLI_TIMEOUT_MS = 10_000;

export interface RunConfig {
  readonly help: boolean;
  readonly stage: string;
  readonly evidenceFiles: readonly string[];
  readonly artifacts: ReadonlyArray<{ readonly name?: string; readonly digest: { readonly sha256: string } }>;
  readonly brokerUrl: string;
  readonly identity: IdentityTokenSources;
  readonly deliver: DeliveryMode;
  readonly json: boolean;
  readonly gceAllowAnyLocal: boolean;
  /** Serve Vault through the loopback proxy (default) rather than put the real token in VAULT_TOKEN. */
  readonly vaultProxy: boolean;
  /** PEM of `VAULT_CACERT`, for the proxy's https upstream. */
  readonly vaultCaCert?: string;
  readonly timeoutMs: number;
  readonly command: readonly string[];
  /** The environment the stage command starts from (the CLI's own). */
  readonly baseEnv: Readonly<Record<string, string | undefined>>;
}

export const RUN_USAGE = `Usage: stagegate run --stage NAME [options] -- CMD [ARGS...]

Open stage NAME at the broker, run CMD with its credentials, close (revoke) it when CMD exits.

Options:
  --stage NAME                 stage to open (required)
  --evidence FILE              evidence document (JSON, JSON array or JSON lines); repeatable
  --artifact [NAME=]sha256:HEX artifact the stage acts on; repeatable
  --broker URL                 broker URL (default: STAGEGATE_BROKER_URL)
  --identity-token-file FILE   identity token file (default: STAGEGATE_IDENTITY_TOKEN_FILE,
                               STAGEGATE_IDENTITY_TOKEN, GitHub Actions OIDC, GitLab STAGEGATE_ID_TOKEN)
  --deliver endpoint|env       how credentials reach CMD (default: endpoint)
  --vault-direct               put the real Vault token in VAULT_TOKEN instead of the loopback proxy
  --gce-allow-any-local        serve GCE metadata to any local process when /proc cannot tell the caller
  --json                       JSON lines on stderr instead of human lines
  -h, --help                   this help

Exit status: CMD's (or CMD's signal re-raised); 2 usage; 125 stage not opened;
126 CMD not executable; 127 CMD not found.`;

/** A usage mistake: coded, naming the flag, never a value. */
export function usage(message: string, flag?: string): StagegateError {
  return new StagegateError('CONFIG_INVALID', message, { details: flag ? { flag } : {} });
}

/** The broker URL from `--broker` or `STAGEGATE_BROKER_URL`: http(s), no user:password. */
export function resolveBrokerUrl(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  const brokerUrl = flag ?? env.STAGEGATE_BROKER_URL ?? '';
  if (!brokerUrl) throw usage('no broker: pass --broker URL or set STAGEGATE_BROKER_URL', '--broker');
  try {
    const u = new URL(brokerUrl);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    if (u.username || u.password) throw new Error('userinfo');
  } catch {
    throw usage('the broker URL must be an http(s) URL without user:password', '--broker');
  }
  return brokerUrl;
}

/**
 * Split `OWN-ARGS -- CMD ARGS…` and parse OWN-ARGS with `util.parseArgs`; a parse error
 * becomes a usage error (its message names the flag, never a value).
 */
export function parseCommandLine(
  argv: readonly string[],
  options: ParseArgsConfig['options'],
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[]; command: string[] } {
  const dash = argv.indexOf('--');
  const own = dash === -1 ? [...argv] : argv.slice(0, dash);
  const command = dash === -1 ? [] : argv.slice(dash + 1);
  try {
    const { values, positionals } = parseArgs({ args: own, allowPositionals: true, options });
    return { values: values as Record<string, string | boolean | string[] | undefined>, positionals, command };
  } catch (err) {
    throw usage(err instanceof Error ? err.message : 'invalid arguments');
  }
}

/** Broker call timeout from `STAGEGATE_TIMEOUT_MS` (milliseconds), else {@link DEFAULT_CLI_TIMEOUT_MS}. */
export function resolveTimeoutMs(env: Readonly<Record<string, string | undefined>>): number {
  if (env.STAGEGATE_TIMEOUT_MS === undefined || env.STAGEGATE_TIMEOUT_MS === '') return DEFAULT_CLI_TIMEOUT_MS;
  const timeoutMs = Number(env.STAGEGATE_TIMEOUT_MS);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw usage('STAGEGATE_TIMEOUT_MS must be a positive integer (milliseconds)');
  return timeoutMs;
}

/**
 * Parse `stagegate run` arguments against an environment.
 *
 * @example
 * ```ts
 * const config = loadRunConfig(['--stage', 'deploy', '--', 'make', 'deploy']);
 * ```
 */
export function loadRunConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): RunConfig {
  const { values, positionals, command } = parseCommandLine(argv, {
        stage: { type: 'string' },
        evidence: { type: 'string', multiple: true },
        artifact: { type: 'string', multiple: true },
        broker: { type: 'string' },
        'identity-token-file': { type: 'string' },
        deliver: { type: 'string' },
        'vault-direct': { type: 'boolean' },
        'gce-allow-any-local': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      });
  const help = values.help === true;
  const base = {
    help,
    json: values.json === true,
    evidenceFiles: (values.evidence as string[] | undefined) ?? [],
    gceAllowAnyLocal: values['gce-allow-any-local'] === true,
    vaultProxy: values['vault-direct'] !== true,
    timeoutMs: DEFAULT_CLI_TIMEOUT_MS,
    baseEnv: env,
  };
  if (help) {
    return { ...base, stage: '', artifacts: [], brokerUrl: '', identity: {}, deliver: 'endpoint', command: [] };
  }
  if (positionals.length > 0) throw usage(`unexpected argument before "--": ${JSON.stringify(positionals[0])}`);
  const stage = values.stage as string | undefined;
  if (!stage) throw usage('--stage NAME is required', '--stage');
  if (command.length === 0 || command[0] === '') throw usage('no command: put it after "--", e.g. stagegate run --stage deploy -- make deploy');

  const deliver = (values.deliver as string | undefined) ?? 'endpoint';
  if (deliver !== 'endpoint' && deliver !== 'env') throw usage('--deliver must be "endpoint" or "env"', '--deliver');

  const brokerUrl = resolveBrokerUrl(values.broker as string | undefined, env);

  const artifacts = ((values.artifact as string[] | undefined) ?? []).map((a) => {
    const m = /^(?:([^=]+)=)?sha256:([0-9a-fA-F]{64})$/.exec(a);
    if (!m) throw usage(`--artifact must be [NAME=]sha256:<64 hex digits>, got ${JSON.stringify(a.slice(0, 80))}`, '--artifact');
    return m[1] ? { name: m[1], digest: { sha256: m[2]!.toLowerCase() } } : { digest: { sha256: m[2]!.toLowerCase() } };
  });

  const timeoutMs = resolveTimeoutMs(env);

  let vaultCaCert: string | undefined;
  if (env.VAULT_CACERT) {
    try {
      vaultCaCert = readFileSync(env.VAULT_CACERT, 'utf8');
    } catch {
      throw usage('VAULT_CACERT names a file that cannot be read');
    }
  }

  return {
    ...base,
    stage,
    artifacts,
    brokerUrl,
    identity: identityTokenSourcesFromEnv(env, { tokenFile: values['identity-token-file'] as string | undefined }),
    deliver,
    vaultCaCert,
    timeoutMs,
    command,
  };
}

/**
 * Read evidence files: a JSON object, a JSON array of objects, or JSON lines (in-toto
 * `.intoto.jsonl`). Errors name the file, never its content.
 *
 * @example
 * ```ts
 * const evidence = readEvidenceFiles(['provenance.intoto.jsonl']);
 * ```
 */
export function readEvidenceFiles(files: readonly string[]): object[] {
  const out: object[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw usage(`cannot read evidence file ${file} (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`, '--evidence');
    }
    const docs = parseEvidence(text);
    if (!docs) throw usage(`evidence file ${file} is not JSON, a JSON array or JSON lines of objects`, '--evidence');
    out.push(...docs);
  }
  return out;
}

function parseEvidence(text: string): object[] | undefined {
  const isObj = (v: unknown): v is object => typeof v === 'object' && v !== null && !Array.isArray(v);
  try {
    const v: unknown = JSON.parse(text);
    if (isObj(v)) return [v];
    if (Array.isArray(v) && v.every(isObj)) return v;
    return undefined;
  } catch {
    // fall through to JSON lines
  }
  const docs: object[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const v: unknown = JSON.parse(line);
      if (!isObj(v)) return undefined;
      docs.push(v);
    } catch {
      return undefined;
    }
  }
  return docs.length > 0 ? docs : undefined;
}
