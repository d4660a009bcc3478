/**
 * The provider's one door to Vault: node-vault underneath, the broker's own Vault
 * session (login, re-login before expiry, re-login once when Vault refuses the token),
 * retries of transient failures only, and every failure turned into a coded,
 * secret-free {@link StagegateError} (see vault-errors.ts).
 *
 * node-vault quirks handled here (PROTOCOLS.md, "HashiCorp Vault"):
 * - its `tokenCreate*`/`*Login` helpers overwrite `client.token` with the returned
 *   token; we only use `request()` and pass the token per call, and keep
 *   `client.token` empty, so no call ever runs with a token it did not choose;
 * - it falls back to `VAULT_TOKEN`, `VAULT_ADDR`, `VAULT_NAMESPACE`, `VAULT_PREFIX`
 *   and `VAULT_SKIP_VERIFY` from the environment; every one is pinned to the config;
 * - its `debug` logger prints request bodies (secret_id, JWT) under `DEBUG=node-vault`;
 *   we hand it a no-op;
 * - Node's HTTP stack cannot always carry the `LIST` verb, so lists use Vault's
 *   documented `GET …?list=true`.
 */
import { readFileSync } from 'node:fs';
import nodeVault from 'node-vault';
import type { Logger } from 'pino';
import { readBrokerCredential, type Environment } from './broker-login';
import type { VaultConfig } from './vault-config';
import { certainlyNotApplied, describeVaultFailure, isTransient, toVaultError, type VaultFailure } from './vault-errors';
import { readAuth } from './vault-wire';

/** Re-login once this fraction of the broker token's TTL has passed. */
const RELOGIN_FRACTION = 2 / 3;

export interface VaultRequest {
  /** Short, fixed name of the operation for error messages, e.g. `create token`. */
  readonly operation: string;
  readonly method: 'GET' | 'POST' | 'LIST';
  /** Path relative to `/v1/`, no leading slash. */
  readonly path: string;
  readonly body?: Readonly<Record<string, unknown>>;
  /** Use this token instead of the broker's session (e.g. a per-stage lease-owner token). */
  readonly token?: string;
  /**
   * False for calls that mint something (token create, dynamic secret read): they are
   * retried only when Vault certainly did not act on them. Default: true for GET/LIST.
   */
  readonly idempotent?: boolean;
}

export interface VaultClient {
  readonly address: string;
  readonly namespace: string | undefined;
  /** Perform a call; resolves to the JSON body (undefined for 204). */
  call(req: VaultRequest): Promise<unknown>;
  /** Drop the broker session so the next call logs in again. */
  invalidateSession(): void;
}

export interface VaultClientDeps {
  readonly logger: Logger;
  readonly now: () => Date;
  readonly env: Environment;
  /** Backoff sleep; tests may shorten it. */
  readonly sleep?: (ms: number) => Promise<void>;
}

interface Session {
  readonly token: string;
  /** Epoch ms after which we log in again before use; null = only on refusal. */
  readonly renewAt: number | null;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Create the Vault client for one provider instance. Reads TLS files once, here. */
export function createVaultClient(config: VaultConfig, deps: VaultClientDeps): VaultClient {
  const address = config.address.replace(/\/+$/, '');
  const tls = config.tls;
  const requestOptions: Record<string, unknown> = {};
  if (tls?.caFile) requestOptions.ca = readFileSync(tls.caFile);
  if (tls?.certFile) requestOptions.cert = readFileSync(tls.certFile);
  if (tls?.keyFile) requestOptions.key = readFileSync(tls.keyFile);
  const strictSSL = !(tls?.insecureSkipVerify ?? false);
  const vault = nodeVault({
    endpoint: address,
    apiVersion: 'v1',
    // Never let node-vault print bodies (they carry secret_id / JWTs / tokens).
    debug: () => undefined,
    // Pinned so VAULT_SKIP_VERIFY in the broker's environment cannot turn TLS checks off.
    rpDefaults: { strictSSL },
    requestOptions: { ...requestOptions, strictSSL },
  } as nodeVault.VaultOptions & { rpDefaults: { strictSSL: boolean } });
  // Pin what node-vault would otherwise take from VAULT_* environment variables.
  vault.token = '';
  (vault as unknown as { namespace: string; pathPrefix: string }).namespace = config.namespace ?? '';
  (vault as unknown as { pathPrefix: string }).pathPrefix = '';
  const sleep = deps.sleep ?? defaultSleep;
  const { attempts, baseDelayMs } = config.retry;

  let session: Promise<Session> | null = null;
  /** The HTTP facts behind each coded error, kept off the error object itself. */
  const failures = new WeakMap<object, VaultFailure>();

  async function raw(req: VaultRequest, token: string | undefined): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (token) headers['X-Vault-Token'] = token;
    return vault.request({
      path: req.method === 'LIST' ? `/${req.path}?list=true` : `/${req.path}`,
      method: req.method === 'LIST' ? 'GET' : req.method,
      json: req.body,
      headers,
      timeout: config.timeoutMs,
    });
  }

  /** One call with retries; `token === undefined` sends none (login endpoints). */
  async function withRetries(req: VaultRequest, token: string | undefined): Promise<unknown> {
    const idempotent = req.idempotent ?? req.method !== 'POST';
    for (let attempt = 1; ; attempt++) {
      try {
        return await raw(req, token);
      } catch (err) {
        const failure = describeVaultFailure(err);
        const retryable = isTransient(failure) && (idempotent || certainlyNotApplied(failure));
        if (!retryable || attempt >= attempts) {
          const coded = toVaultError(req.operation, failure);
          failures.set(coded, failure);
          throw coded;
        }
        await sleep(baseDelayMs * 2 ** (attempt - 1));
      }
    }
  }

  async function login(): Promise<Session> {
    const credential = await readBrokerCredential(config.auth, deps.env);
    if (credential.kind === 'token') return { token: credential.token, renewAt: null };
    const body = await withRetries({ operation: 'login', method: 'POST', path: credential.path, body: credential.body, idempotent: true }, undefined);
    const auth = readAuth(body, 'login');
    const renewAt = auth.lease_duration > 0 ? deps.now().getTime() + auth.lease_duration * 1000 * RELOGIN_FRACTION : null;
    deps.logger.info({ provider: 'vault', authMethod: config.auth.method, leaseSeconds: auth.lease_duration }, 'vault login succeeded');
    return { token: auth.client_token, renewAt };
  }

  async function currentSession(): Promise<Session> {
    if (session) {
      const s = await session.catch(() => null);
      if (s && (s.renewAt === null || deps.now().getTime() < s.renewAt)) return s;
      session = null;
    }
    const pending = login();
    session = pending;
    try {
      return await pending;
    } catch (err) {
      if (session === pending) session = null;
      throw err;
    }
  }

  return {
    address,
    namespace: config.namespace,
    invalidateSession() {
      session = null;
    },
    async call(req) {
      if (req.token !== undefined) return withRetries(req, req.token);
      const s = await currentSession();
      try {
        return await withRetries(req, s.token);
      } catch (err) {
        // A 403 may mean our own token expired or was rotated (Vault answers 403 for a
        // bad token too): log in again once and retry. A real policy denial costs one
        // extra login and then surfaces as PROVIDER_REJECTED.
        if (typeof err !== 'object' || err === null || failures.get(err)?.status !== 403) throw err;
        session = null;
        return withRetries(req, (await currentSession()).token);
      }
    },
  };
}
