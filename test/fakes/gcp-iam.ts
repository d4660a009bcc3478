/**
 * A stateful, wire-faithful fake of Google's IAM Credentials API
 * (`iamcredentials.googleapis.com`), for tests with the real
 * `@google-cloud/iam-credentials` client in REST ("fallback") mode.
 *
 * Speaks what the client really sends (checked by logging it):
 * `POST /v1/projects/-/serviceAccounts/deployer%40p.iam.gserviceaccount.com:generateAccessToken?$alt=json%3Benum-encoding=int`
 * — the route template `v1/{name=projects/*\/serviceAccounts/*}:generateAccessToken`,
 * the `@` percent-encoded — with `Authorization: Bearer <caller token>` and body
 * `{"scope":[…],"lifetime":"300s","delegates":[…]}` (empty arrays omitted).
 * Answers `{"accessToken","expireTime"}` or Google's error body
 * `{"error":{"code":403,"message":"…","status":"PERMISSION_DENIED"}}`.
 *
 * Enforces what Google enforces (the client validates nothing): the caller's bearer
 * token (401 UNAUTHENTICATED), the account id's form (400), scope present (400),
 * lifetime ≤ 3600 s (400 unless configured higher, as with the org-policy exception),
 * `roles/iam.serviceAccountTokenCreator` of the caller on the target or along the
 * delegation chain (403 "… (or it may not exist)" — Google does not reveal whether an
 * account exists to a caller without permission), unknown account (404 NOT_FOUND for a
 * caller with project-wide permission), disabled account (400 FAILED_PRECONDITION).
 *
 * State: issued tokens (account, scopes, expiry), a controllable clock,
 * `disableServiceAccount()` (its live tokens stop working; enabling again revives them,
 * as Google does), `tokenInfo()` (also served at `GET /oauth2/v3/tokeninfo` like
 * Google's), an outage mode (503 UNAVAILABLE), a hang mode, call counters and a log of
 * requests.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The role that carries `iam.serviceAccounts.getAccessToken`. */
export const TOKEN_CREATOR_ROLE = 'roles/iam.serviceAccountTokenCreator';

export interface FakeGcpIamOptions {
  /** Emails of the service accounts that exist (all enabled at start). */
  readonly serviceAccounts?: readonly string[];
  /** Bearer tokens the fake accepts, mapped to the principal they authenticate (`serviceAccount:broker@p.iam.gserviceaccount.com`). */
  readonly callers?: Readonly<Record<string, string>>;
  /**
   * `roles/iam.serviceAccountTokenCreator` bindings: target email → principals. The key
   * `*` stands for a project-level binding (applies to every account, existing or not).
   */
  readonly tokenCreators?: Readonly<Record<string, readonly string[]>>;
  /** Largest accepted lifetime, seconds (default 3600; 43200 models the org-policy exception). */
  readonly maxLifetimeSeconds?: number;
  /** Initial clock, ms since epoch (default: real now). The clock only moves when told to. */
  readonly startTimeMs?: number;
}

export type TokenState = 'valid' | 'expired' | 'disabled' | 'unknown';

export interface TokenInfo {
  readonly state: TokenState;
  /** True only for `valid`: a Google API would accept the token now. */
  readonly active: boolean;
  readonly email?: string;
  readonly scopes?: readonly string[];
  readonly expiresAt?: Date;
}

export interface IssuedToken {
  readonly accessToken: string;
  readonly email: string;
  readonly scopes: readonly string[];
  readonly delegates: readonly string[];
  readonly caller: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  readonly lifetimeSeconds: number;
}

export interface RecordedRequest {
  readonly method: string;
  /** The raw request target (path + query) exactly as received. */
  readonly url: string;
  /** The decoded service-account id from the path, if the route matched. */
  readonly account?: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  readonly status: number;
}

export interface FakeGcpIam {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The fake's clock. */
  now(): Date;
  advanceClock(ms: number): void;
  setClock(at: Date | number): void;
  addServiceAccount(email: string): void;
  disableServiceAccount(email: string): void;
  enableServiceAccount(email: string): void;
  grantTokenCreator(targetEmailOrStar: string, principal: string): void;
  revokeTokenCreator(targetEmailOrStar: string, principal: string): void;
  addCaller(bearerToken: string, principal: string): void;
  /** Like Google's tokeninfo: is this access token alive, expired, dead with its account, or unknown? */
  tokenInfo(accessToken: string): TokenInfo;
  /** Outage mode: every request answers 503 UNAVAILABLE. */
  setOutage(on: boolean): void;
  /** The next `n` requests answer 503 UNAVAILABLE, then service resumes. */
  failNext(n: number, status?: 429 | 500 | 503): void;
  /** Hang mode: requests are accepted and never answered (until turned off or closed). */
  setHang(on: boolean): void;
  /** Every token issued, oldest first. */
  readonly issued: readonly IssuedToken[];
  /** Every request seen, oldest first. */
  readonly requests: readonly RecordedRequest[];
  /** Counters: `generateAccessToken` attempts and answers by HTTP status. */
  readonly calls: { generateAccessToken: number; byStatus: Record<number, number> };
  close(): Promise<void>;
}

const ROUTE = /^\/v1\/projects\/([^/]+)\/serviceAccounts\/([^/:]+):generateAccessToken$/;
const DELEGATE = /^projects\/[^/]+\/serviceAccounts\/([^/]+)$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const UNIQUE_ID = /^\d{21}$/;
const DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/;

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

class GoogleHttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly status: string = STATUS_NAMES[code] ?? 'UNKNOWN',
  ) {
    super(message);
  }
}

/**
 * Start the fake on 127.0.0.1 on a free port.
 *
 * @example
 * const iam = await startFakeGcpIam({
 *   serviceAccounts: ['deployer@proj-1.iam.gserviceaccount.com'],
 *   callers: { 'broker-token': 'serviceAccount:broker@ops.iam.gserviceaccount.com' },
 *   tokenCreators: { 'deployer@proj-1.iam.gserviceaccount.com': ['serviceAccount:broker@ops.iam.gserviceaccount.com'] },
 * });
 */
export async function startFakeGcpIam(opts: FakeGcpIamOptions = {}): Promise<FakeGcpIam> {
  let clockMs = opts.startTimeMs ?? Date.now();
  const maxLifetime = opts.maxLifetimeSeconds ?? 3600;
  const accounts = new Map<string, { disabled: boolean }>((opts.serviceAccounts ?? []).map((e) => [e, { disabled: false }]));
  const callers = new Map<string, string>(Object.entries(opts.callers ?? {}));
  const bindings = new Map<string, Set<string>>(Object.entries(opts.tokenCreators ?? {}).map(([k, v]) => [k, new Set(v)]));
  const tokens = new Map<string, IssuedToken>();
  const issued: IssuedToken[] = [];
  const requests: RecordedRequest[] = [];
  const calls = { generateAccessToken: 0, byStatus: {} as Record<number, number> };
  let outage = false;
  let failures: { n: number; status: number } = { n: 0, status: 503 };
  let hang = false;

  const hasTokenCreator = (principal: string, target: string) =>
    bindings.get(target)?.has(principal) === true || bindings.get('*')?.has(principal) === true;

  function permissionDenied(): GoogleHttpError {
    // Google's text does not name the account, nor say whether it exists.
    return new GoogleHttpError(403, "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).");
  }

  function generateAccessToken(account: string, callerPrincipal: string, rawBody: string): IssuedToken {
    let body: { scope?: unknown; lifetime?: unknown; delegates?: unknown };
    try {
      body = rawBody.length === 0 ? {} : (JSON.parse(rawBody) as typeof body);
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
    } catch {
      throw new GoogleHttpError(400, 'Invalid JSON payload received.');
    }
    if (!EMAIL.test(account) && !UNIQUE_ID.test(account)) {
      throw new GoogleHttpError(400, `Invalid form of account ID ${account}. Should be [Gaia ID |Email |Unique ID |] of the account`);
    }
    const scopes = body.scope ?? [];
    if (!Array.isArray(scopes) || !scopes.every((s): s is string => typeof s === 'string' && s.length > 0)) {
      throw new GoogleHttpError(400, 'Invalid value at \'scope\'.');
    }
    if (scopes.length === 0) throw new GoogleHttpError(400, 'Scope required.');
    let lifetimeSeconds = 3600; // Google's default when none is given
    if (body.lifetime !== undefined) {
      const m = typeof body.lifetime === 'string' ? DURATION.exec(body.lifetime) : null;
      if (!m) throw new GoogleHttpError(400, `Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), ${JSON.stringify(body.lifetime)}`);
      lifetimeSeconds = Number(m[1]) + (m[2] ? Number(`0.${m[2]}`) : 0);
      if (lifetimeSeconds <= 0) throw new GoogleHttpError(400, 'The lifetime must be positive.');
      if (lifetimeSeconds > maxLifetime) {
        throw new GoogleHttpError(400, `Lifetime must be at most ${maxLifetime} seconds.`);
      }
    }
    const rawDelegates = body.delegates ?? [];
    if (!Array.isArray(rawDelegates)) throw new GoogleHttpError(400, "Invalid value at 'delegates'.");
    const delegates = rawDelegates.map((d) => {
      const m = typeof d === 'string' ? DELEGATE.exec(d) : null;
      if (!m) throw new GoogleHttpError(400, `Invalid delegate ${JSON.stringify(d)}; expected projects/-/serviceAccounts/{ACCOUNT}.`);
      return m[1];
    });

    // IAM check along the chain: caller → delegates[0] → … → target.
    const chain = [...delegates, account];
    let principal = callerPrincipal;
    for (const hop of chain) {
      if (!hasTokenCreator(principal, hop)) throw permissionDenied();
      const acct = accounts.get(hop);
      if (!acct) throw new GoogleHttpError(404, `Not found; Gaia id not found for email ${hop}`);
      if (acct.disabled) throw new GoogleHttpError(400, 'Precondition check failed.', 'FAILED_PRECONDITION');
      principal = `serviceAccount:${hop}`;
    }

    const issuedAt = new Date(clockMs);
    // Google reports expireTime in whole seconds.
    const expiresAt = new Date(Math.floor((clockMs + lifetimeSeconds * 1000) / 1000) * 1000);
    const token: IssuedToken = {
      accessToken: `ya29.c.${randomBytes(96).toString('base64url')}`,
      email: account,
      scopes,
      delegates,
      caller: callerPrincipal,
      issuedAt,
      expiresAt,
      lifetimeSeconds,
    };
    tokens.set(token.accessToken, token);
    issued.push(token);
    return token;
  }

  function tokenInfo(accessToken: string): TokenInfo {
    const t = tokens.get(accessToken);
    if (!t) return { state: 'unknown', active: false };
    const base = { email: t.email, scopes: t.scopes, expiresAt: t.expiresAt };
    if (clockMs >= t.expiresAt.getTime()) return { state: 'expired', active: false, ...base };
    if (accounts.get(t.email)?.disabled !== false) return { state: 'disabled', active: false, ...base };
    return { state: 'valid', active: true, ...base };
  }

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    calls.byStatus[status] = (calls.byStatus[status] ?? 0) + 1;
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
    res.end(JSON.stringify(body));
  }

  function sendError(res: ServerResponse, e: GoogleHttpError): void {
    const headers: Record<string, string> =
      e.code === 401 ? { 'www-authenticate': 'Bearer realm="https://accounts.google.com/"' } : {};
    send(res, e.code, { error: { code: e.code, message: e.message, status: e.status } }, headers);
  }

  function handle(req: IncomingMessage, res: ServerResponse, rawBody: string): number | undefined {
    const [path, query = ''] = (req.url ?? '/').split('?', 2) as [string, string?];

    // Google's tokeninfo endpoint, so a test can ask over HTTP what the fake knows.
    if (req.method === 'GET' && path === '/oauth2/v3/tokeninfo') {
      const info = tokenInfo(new URLSearchParams(query).get('access_token') ?? '');
      if (!info.active || !info.expiresAt) {
        send(res, 400, { error: 'invalid_token', error_description: 'Invalid Value' });
        return 400;
      }
      send(res, 200, {
        azp: info.email,
        aud: info.email,
        scope: (info.scopes ?? []).join(' '),
        exp: String(Math.floor(info.expiresAt.getTime() / 1000)),
        expires_in: String(Math.floor((info.expiresAt.getTime() - clockMs) / 1000)),
        email: info.email,
        email_verified: 'true',
        access_type: 'online',
      });
      return 200;
    }

    const route = ROUTE.exec(path);
    if (!route) {
      sendError(res, new GoogleHttpError(404, `The requested URL ${path} was not found on this server.`));
      return 404;
    }
    if (req.method !== 'POST') {
      sendError(res, new GoogleHttpError(404, `The requested URL ${path} was not found on this server.`));
      return 404;
    }
    calls.generateAccessToken++;
    if (outage || failures.n > 0) {
      const status = outage ? 503 : failures.status;
      if (!outage) failures = { ...failures, n: failures.n - 1 };
      sendError(res, new GoogleHttpError(status, status === 429 ? 'Quota exceeded.' : 'The service is currently unavailable.'));
      return status;
    }
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const principal = auth ? callers.get(auth[1]) : undefined;
    if (!principal) {
      sendError(
        res,
        new GoogleHttpError(
          401,
          'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        ),
      );
      return 401;
    }
    let account: string;
    try {
      account = decodeURIComponent(route[2]);
    } catch {
      sendError(res, new GoogleHttpError(400, 'Invalid resource name.'));
      return 400;
    }
    try {
      const t = generateAccessToken(account, principal, rawBody);
      send(res, 200, { accessToken: t.accessToken, expireTime: t.expiresAt.toISOString().replace('.000Z', 'Z') });
      return 200;
    } catch (e) {
      if (e instanceof GoogleHttpError) {
        sendError(res, e);
        return e.code;
      }
      throw e;
    }
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      if (hang) {
        // Accepted, never answered: the caller's own timeout must fire.
        if (ROUTE.test((req.url ?? '').split('?')[0])) calls.generateAccessToken++;
        return;
      }
      let status: number | undefined;
      try {
        status = handle(req, res, rawBody);
      } catch {
        sendError(res, new GoogleHttpError(500, 'Internal error encountered.'));
        status = 500;
      }
      const route = ROUTE.exec((req.url ?? '').split('?')[0]);
      let account: string | undefined;
      try {
        account = route ? decodeURIComponent(route[2]) : undefined;
      } catch {
        account = undefined;
      }
      requests.push({ method: req.method ?? '', url: req.url ?? '', account, headers: { ...req.headers }, body: rawBody, status: status ?? 0 });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    now: () => new Date(clockMs),
    advanceClock: (ms) => {
      clockMs += ms;
    },
    setClock: (at) => {
      clockMs = typeof at === 'number' ? at : at.getTime();
    },
    addServiceAccount: (email) => {
      if (!accounts.has(email)) accounts.set(email, { disabled: false });
    },
    disableServiceAccount: (email) => {
      const a = accounts.get(email);
      if (!a) throw new Error(`fake GCP IAM: no service account ${email}`);
      a.disabled = true;
    },
    enableServiceAccount: (email) => {
      const a = accounts.get(email);
      if (!a) throw new Error(`fake GCP IAM: no service account ${email}`);
      a.disabled = false;
    },
    grantTokenCreator: (target, principal) => {
      const set = bindings.get(target) ?? new Set<string>();
      set.add(principal);
      bindings.set(target, set);
    },
    revokeTokenCreator: (target, principal) => {
      bindings.get(target)?.delete(principal);
    },
    addCaller: (bearer, principal) => {
      callers.set(bearer, principal);
    },
    tokenInfo,
    setOutage: (on) => {
      outage = on;
    },
    failNext: (n, status = 503) => {
      failures = { n, status };
    },
    setHang: (on) => {
      hang = on;
    },
    issued,
    requests,
    calls,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
