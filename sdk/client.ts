/**
 * The typed HTTP client of the stagegate broker API v1 (see docs/api.md).
 *
 * Security: identity tokens, stage tokens and credential values are sent in headers or
 * come back in bodies; none of them is ever put into an error message or `details`.
 * Errors carry the method, the path template and the broker's own coded error.
 */
import { StagegateError } from './errors';
import { array, boolean, number, object, oneOf, optional, safeParse, string, stringRecord, type Schema } from './response-schema';

/** Default bound on one HTTP request to the broker, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Default number of extra attempts for idempotent calls (heartbeat, close, get). */
export const DEFAULT_RETRIES = 2;
/** First back-off between attempts of an idempotent call, in milliseconds (doubles each time). */
export const RETRY_BASE_DELAY_MS = 200;

// Response schemas (docs/api.md). A small validator rather than zod: see response-schema.ts.
const isoDate = string(1);

export const credentialSchema: Schema<Credential> = object({
  name: string(),
  provider: string(),
  kind: oneOf(['aws', 'gcp-access-token', 'vault-token', 'secret'] as const),
  expiresAt: isoDate,
  revocation: oneOf(['native', 'deny-policy', 'expiry', 'none'] as const),
  values: stringRecord(),
  meta: optional(stringRecord()),
  refreshAt: optional(isoDate),
});

export const openedStageSchema: Schema<OpenedStage> = object({
  stageId: string(1),
  stageToken: string(1),
  build: string(),
  stage: string(),
  phase: oneOf(['run', 'install'] as const),
  rule: string(),
  expiresAt: isoDate,
  maxExpiresAt: isoDate,
  heartbeatSeconds: number({ positive: true }),
  credentials: array(credentialSchema),
});

export const heartbeatSchema: Schema<HeartbeatResult> = object({
  stageId: string(),
  state: string(),
  expiresAt: isoDate,
  heartbeatSeconds: number({ positive: true }),
  installPhaseOpen: boolean(),
  credentials: array(credentialSchema),
});

export const revokedSchema: Schema<RevokedCredential> = object({
  name: string(),
  provider: string(),
  method: string(),
  at: optional(string()),
  effectiveAt: optional(string()),
  state: optional(string()),
});

export const closedSchema: Schema<ClosedStage> = object({
  stageId: string(),
  state: string(),
  revoked: array(revokedSchema),
});

export const stageStateSchema: Schema<StageState> = object({
  stageId: string(),
  build: string(),
  stage: string(),
  phase: string(),
  rule: string(),
  state: oneOf(['open', 'closing', 'closed', 'failed'] as const),
  installPhaseOpen: boolean(),
  openedAt: string(),
  expiresAt: string(),
  closedAt: optional(string()),
  grants: array(
    object({
      name: string(),
      provider: string(),
      kind: string(),
      state: string(),
      revocation: string(),
      expiresAt: string(),
      revokedAt: optional(string()),
      effectiveAt: optional(string()),
      lastErrorCode: optional(string()),
    }),
  ),
});

/** How a credential reaches the stage process. */
export type CredentialKind = 'aws' | 'gcp-access-token' | 'vault-token' | 'secret';
/** How a credential is taken away at stage exit (see providers/provider.ts). */
export type RevocationMethod = 'native' | 'deny-policy' | 'expiry' | 'none';

/**
 * One credential issued to a stage. `values` is SECRET (aws: `accessKeyId`,
 * `secretAccessKey`, `sessionToken`; gcp-access-token: `accessToken`; vault-token:
 * `token`; secret: any); `meta` is not (region, accountId, projectId, vaultAddress, …).
 */
export interface Credential {
  readonly name: string;
  readonly provider: string;
  readonly kind: CredentialKind;
  /** ISO 8601. */
  readonly expiresAt: string;
  readonly revocation: RevocationMethod;
  /** SECRET. */
  readonly values: Readonly<Record<string, string>>;
  readonly meta?: Readonly<Record<string, string>>;
  /** ISO 8601; the broker refreshes the credential around then (heartbeats bring it). */
  readonly refreshAt?: string;
}

/** The answer to `POST /v1/stages`. `stageToken` and every `credentials[].values` are SECRET. */
export interface OpenedStage {
  readonly stageId: string;
  /** SECRET: authorises heartbeat, close and get of this stage. */
  readonly stageToken: string;
  readonly build: string;
  readonly stage: string;
  readonly phase: 'run' | 'install';
  readonly rule: string;
  readonly expiresAt: string;
  readonly maxExpiresAt: string;
  /** The stage is reaped if no heartbeat arrives within this many seconds. */
  readonly heartbeatSeconds: number;
  readonly credentials: readonly Credential[];
}

/** The answer to `POST /v1/stages/{id}/heartbeat`: `credentials` holds only those refreshed now. */
export interface HeartbeatResult {
  readonly stageId: string;
  readonly state: string;
  readonly expiresAt: string;
  readonly heartbeatSeconds: number;
  readonly installPhaseOpen: boolean;
  readonly credentials: readonly Credential[];
}

/** One entry of a close answer: how (and whether yet) a credential was taken away. */
export interface RevokedCredential {
  readonly name: string;
  readonly provider: string;
  readonly method: string;
  readonly at?: string;
  readonly effectiveAt?: string;
  /** `revoked`, or `pending` while the broker retries the provider. */
  readonly state?: string;
}

/** The answer to `DELETE /v1/stages/{id}`. */
export interface ClosedStage {
  readonly stageId: string;
  readonly state: string;
  readonly revoked: readonly RevokedCredential[];
}

/** The answer to `GET /v1/stages/{id}`; holds no secret. */
export interface StageState {
  readonly stageId: string;
  readonly build: string;
  readonly stage: string;
  readonly phase: string;
  readonly rule: string;
  readonly state: 'open' | 'closing' | 'closed' | 'failed';
  readonly installPhaseOpen: boolean;
  readonly openedAt: string;
  readonly expiresAt: string;
  readonly closedAt?: string;
  readonly grants: ReadonlyArray<{
    readonly name: string;
    readonly provider: string;
    readonly kind: string;
    readonly state: string;
    readonly revocation: string;
    readonly expiresAt: string;
    readonly revokedAt?: string;
    readonly effectiveAt?: string;
    readonly lastErrorCode?: string;
  }>;
}

/** The body of `POST /v1/stages`. */
export interface OpenStageRequest {
  /** Stage name as written in policy (e.g. `deploy`). */
  readonly stage: string;
  /** Default `run`. */
  readonly phase?: 'run' | 'install';
  /** Evidence documents (in-toto statements, Sigstore bundles, …) as parsed JSON. */
  readonly evidence?: readonly object[];
  /** Artifacts the stage acts on, by digest. */
  readonly artifacts?: ReadonlyArray<{ readonly name?: string; readonly digest: { readonly sha256: string } }>;
}

/** Where the identity token comes from: a fixed string or a function called per open. */
export type IdentityTokenInput = string | (() => Promise<string>);

export interface StagegateClientOptions {
  /** Base URL of the broker, e.g. `https://stagegate.internal:8443`. */
  readonly brokerUrl: string;
  /** The workload identity JWT (or a function returning a fresh one); needed by `openStage` only. */
  readonly identityToken?: IdentityTokenInput;
  /** Bound on one HTTP attempt, in milliseconds. Default {@link DEFAULT_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  /** Extra attempts for idempotent calls on network errors / 502 / 503 / 504. Default {@link DEFAULT_RETRIES}. */
  readonly retries?: number;
  /** fetch implementation; default the global `fetch`. */
  readonly fetch?: typeof fetch;
}

export interface StagegateClient {
  /** The broker URL this client talks to (normalised, no trailing slash). */
  readonly brokerUrl: string;
  /** `POST /v1/stages`. Never retried: a second attempt could open a second stage. */
  openStage(request: OpenStageRequest): Promise<OpenedStage>;
  /** `POST /v1/stages/{id}/heartbeat`. */
  heartbeat(stageId: string, stageToken: string): Promise<HeartbeatResult>;
  /** `DELETE /v1/stages/{id}`; idempotent, so it is retried. */
  closeStage(stageId: string, stageToken: string, options?: { readonly exitCode?: number }): Promise<ClosedStage>;
  /** `GET /v1/stages/{id}`. */
  getStage(stageId: string, stageToken: string): Promise<StageState>;
}

interface CallSpec<T> {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  /** Path template for messages, e.g. `/v1/stages/{id}` (ids are not secret, but keep messages stable). */
  readonly route: string;
  readonly bearer: string;
  readonly body?: unknown;
  readonly schema: Schema<T>;
  readonly idempotent: boolean;
}

/**
 * Create a client of the broker API v1.
 *
 * @example
 * ```ts
 * const client = createStagegateClient({ brokerUrl: 'http://127.0.0.1:8080', identityToken: jwt });
 * const opened = await client.openStage({ stage: 'deploy' });
 * try {
 *   // … use opened.credentials …
 * } finally {
 *   await client.closeStage(opened.stageId, opened.stageToken, { exitCode: 0 });
 * }
 * ```
 */
export function createStagegateClient(options: StagegateClientOptions): StagegateClient {
  let base: URL;
  try {
    base = new URL(options.brokerUrl);
  } catch {
    throw new TypeError('brokerUrl is not a valid URL');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('brokerUrl must be http(s)');
  if (base.username || base.password) throw new TypeError('brokerUrl must not carry credentials');
  const brokerUrl = base.toString().replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retries = options.retries ?? DEFAULT_RETRIES;
  const doFetch = options.fetch ?? fetch;
  if (!(timeoutMs > 0)) throw new TypeError('timeoutMs must be > 0');
  if (!(retries >= 0)) throw new TypeError('retries must be >= 0');

  async function attempt<T>(spec: CallSpec<T>): Promise<{ ok: true; value: T } | { ok: false; error: StagegateError; retryable: boolean; unparsed?: unknown }> {
    const headers: Record<string, string> = { authorization: `Bearer ${spec.bearer}`, accept: 'application/json' };
    let body: string | undefined;
    if (spec.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(spec.body);
    }
    let res: Response;
    let text: string;
    try {
      res = await doFetch(brokerUrl + spec.path, { method: spec.method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
      text = await res.text();
    } catch (err) {
      // Only the error's name/code is kept: a fetch error holds no secret today, but the
      // cause chain is not ours to vouch for.
      const reason = describeNetworkError(err);
      return {
        ok: false,
        retryable: true,
        error: new StagegateError('BROKER_UNAVAILABLE', `broker unreachable: ${spec.method} ${spec.route} (${reason})`, {
          details: { broker: base.origin, method: spec.method, route: spec.route, reason },
        }),
      };
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (res.status < 200 || res.status > 299) {
      const error = StagegateError.fromBody(res.status, parsed);
      return { ok: false, error, retryable: res.status === 502 || res.status === 503 || res.status === 504 };
    }
    const result = safeParse(spec.schema, parsed);
    if (!result.success) {
      // Paths only, never received values: bodies hold credentials.
      const paths = result.issues.slice(0, 10);
      return {
        ok: false,
        retryable: false,
        unparsed: parsed,
        error: new StagegateError('INTERNAL', `broker answered ${spec.method} ${spec.route} with an unexpected body`, {
          details: { method: spec.method, route: spec.route, status: res.status, invalidPaths: paths },
        }),
      };
    }
    return { ok: true, value: result.data };
  }

  async function call<T>(spec: CallSpec<T>): Promise<T> {
    const attempts = spec.idempotent ? retries + 1 : 1;
    let last: StagegateError | undefined;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await sleep(RETRY_BASE_DELAY_MS * 2 ** (i - 1));
      const r = await attempt(spec);
      if (r.ok) return r.value;
      last = r.error;
      if (!r.retryable) break;
    }
    throw last ?? new StagegateError('INTERNAL', 'no attempt made');
  }

  async function identity(): Promise<string> {
    const input = options.identityToken;
    if (input === undefined) {
      throw new StagegateError('UNAUTHENTICATED', 'no identity token configured for this client', { details: {} });
    }
    const token = typeof input === 'string' ? input : await input();
    if (!token) throw new StagegateError('UNAUTHENTICATED', 'the identity token is empty', { details: {} });
    return token;
  }

  function stagePath(stageId: string): string {
    if (!stageId) throw new TypeError('stageId is required');
    return `/v1/stages/${encodeURIComponent(stageId)}`;
  }

  return {
    brokerUrl,
    async openStage(request) {
      if (!request || typeof request.stage !== 'string' || request.stage === '') throw new TypeError('stage is required');
      const bearer = await identity();
      const body: Record<string, unknown> = { stage: request.stage, phase: request.phase ?? 'run' };
      if (request.evidence) body.evidence = request.evidence;
      if (request.artifacts) body.artifacts = request.artifacts;
      const spec: CallSpec<OpenedStage> = {
        method: 'POST', path: '/v1/stages', route: '/v1/stages', bearer, body, schema: openedStageSchema, idempotent: false,
      };
      const r = await attempt(spec);
      if (r.ok) return r.value;
      // A 2xx we cannot read may still have opened a stage and issued credentials: if the
      // body names the stage and its token, close it now rather than wait for the reaper.
      const u = r.unparsed as { stageId?: unknown; stageToken?: unknown } | undefined;
      if (u && typeof u.stageId === 'string' && u.stageId && typeof u.stageToken === 'string' && u.stageToken) {
        const close: CallSpec<ClosedStage> = {
          method: 'DELETE', path: stagePath(u.stageId), route: '/v1/stages/{id}', bearer: u.stageToken, schema: closedSchema, idempotent: true,
        };
        await call(close).catch(() => undefined);
      }
      throw r.error;
    },
    heartbeat(stageId, stageToken) {
      const path = `${stagePath(stageId)}/heartbeat`;
      return call({ method: 'POST', path, route: '/v1/stages/{id}/heartbeat', bearer: stageToken, schema: heartbeatSchema, idempotent: true });
    },
    closeStage(stageId, stageToken, closeOptions) {
      const body = closeOptions?.exitCode === undefined ? undefined : { exitCode: closeOptions.exitCode };
      return call({ method: 'DELETE', path: stagePath(stageId), route: '/v1/stages/{id}', bearer: stageToken, body, schema: closedSchema, idempotent: true });
    },
    getStage(stageId, stageToken) {
      return call({ method: 'GET', path: stagePath(stageId), route: '/v1/stages/{id}', bearer: stageToken, schema: stageStateSchema, idempotent: true });
    },
  };
}

function describeNetworkError(err: unknown): string {
  // Duck-typed, not `instanceof Error`: fetch's errors may come from another realm (vm, Jest).
  if (typeof err !== 'object' || err === null) return 'unknown';
  const name = (err as { name?: unknown }).name;
  if (name === 'TimeoutError' || name === 'AbortError') return 'timeout';
  const cause = (err as { cause?: { code?: unknown } }).cause;
  if (cause && typeof cause.code === 'string' && /^[A-Z0-9_]{1,40}$/.test(cause.code)) return cause.code;
  return typeof name === 'string' && /^\w{1,40}$/.test(name) ? name : 'unknown';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
