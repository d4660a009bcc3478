/**
 * A stateful, wire-faithful fake of HashiCorp Vault's HTTP API v1 (see
 * ../../../shared/PROTOCOLS.md, "HashiCorp Vault"), for driving the real node-vault
 * client in tests. It keeps what Vault keeps — a token tree with accessors, TTLs on a
 * controllable clock, use counts, leases owned by the token that created them — and
 * enforces what Vault enforces: ACL policies per path, the "child policies must be a
 * subset of the parent's unless sudo" rule, "restricted use token cannot generate child
 * tokens", revocation of a token's children and leases with it. Errors carry Vault's
 * own bodies and statuses.
 *
 * Simplifications (each one named, none of them hides a wire difference the provider
 * relies on):
 * - Policies are defined once for every namespace; tokens, leases, KV and auth roles
 *   are per namespace. The root token is valid in every namespace.
 * - Node's HTTP parser rejects the `LIST` verb before any handler runs, so the fake
 *   accepts Vault's documented alternative `GET …?list=true` (node-vault sends it with
 *   `noCustomHTTPVerbs: true`).
 * - ACL: the union of the capabilities of every matching rule; `deny` anywhere wins.
 *   Globs: a trailing `*` is a prefix match, `+` matches one path segment.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export type Capability = 'create' | 'read' | 'update' | 'delete' | 'list' | 'sudo' | 'deny';
/** Policy rules: path pattern → capabilities. */
export type PolicyRules = Record<string, Capability[]>;

export interface FakeVaultOptions {
  /** Named policies (besides the built-in `root` and `default`). */
  policies?: Record<string, PolicyRules>;
  /** Namespaces that exist besides the root namespace (`""`). */
  namespaces?: string[];
  /** Clock start (default: the real current time). */
  startTime?: Date;
  /** TTL of tokens created without one (default 768h, Vault's system default), seconds. */
  defaultTtlSeconds?: number;
}

export interface FakeTokenInfo {
  readonly id: string;
  readonly accessor: string;
  readonly namespace: string;
  readonly policies: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly parent: string | null;
  readonly orphan: boolean;
  readonly displayName: string;
  readonly numUses: number;
  readonly renewable: boolean;
  /** Seconds; 0 = never expires. */
  readonly creationTtl: number;
  readonly explicitMaxTtl: number;
  /** Epoch ms, or null when it never expires. */
  readonly expiresAt: number | null;
}

export interface FakeLeaseInfo {
  readonly leaseId: string;
  readonly namespace: string;
  readonly ownerAccessor: string;
  readonly kind: 'database' | 'aws-iam-user';
  readonly username?: string;
  readonly accessKey?: string;
  readonly expiresAt: number;
  readonly revoked: boolean;
}

export interface AuthRoleOptions {
  method: 'approle' | 'jwt' | 'kubernetes';
  /** Mount path (default: the method name). */
  mount?: string;
  namespace?: string;
  /** jwt/kubernetes: role name; approle: the role_id. */
  role: string;
  /** jwt/kubernetes: the one JWT accepted; approle: the secret_id. */
  secret: string;
  policies: string[];
  /** Login token TTL, seconds (default 3600). */
  ttlSeconds?: number;
}

export interface OutageOptions {
  /** 503 → `Vault is sealed`; any other status → a generic error body. */
  status: number;
  /** Fail only the next N requests, then recover (default: until cleared). */
  count?: number;
}

export interface FakeVault {
  readonly url: string;
  readonly rootToken: string;
  close(): Promise<void>;
  /** Fail every request (or the next `count`) with the given status; `null` clears. */
  setOutage(outage: OutageOptions | null): void;
  /** Move the fake's clock forward; expired tokens and leases are revoked lazily. */
  advance(seconds: number): void;
  now(): number;
  setPolicy(name: string, rules: PolicyRules): void;
  addAuthRole(opts: AuthRoleOptions): void;
  addDatabaseRole(role: string, opts?: { mount?: string; namespace?: string; ttlSeconds?: number; maxTtlSeconds?: number }): void;
  addAwsRole(role: string, opts: { mount?: string; namespace?: string; credentialType: 'iam_user' | 'assumed_role'; ttlSeconds?: number }): void;
  seedKv(path: string, data: Record<string, unknown>, opts?: { mount?: string; namespace?: string }): number;
  /** Create a token directly (as the root token would), e.g. the broker's own token. */
  createToken(opts: { policies: string[]; namespace?: string; ttlSeconds?: number; meta?: Record<string, string>; numUses?: number }): { token: string; accessor: string };
  /** Live (unexpired, unrevoked) tokens. */
  tokens(namespace?: string): FakeTokenInfo[];
  tokenByAccessor(accessor: string, namespace?: string): FakeTokenInfo | undefined;
  isTokenValid(token: string, namespace?: string): boolean;
  leases(namespace?: string): FakeLeaseInfo[];
  isLeaseValid(leaseId: string, namespace?: string): boolean;
  /** Would the database accept this generated username now? */
  isDatabaseUserValid(username: string, namespace?: string): boolean;
  /** Would AWS accept this access key now? (STS keys survive lease revocation: Vault cannot revoke them.) */
  isAwsKeyValid(accessKey: string, namespace?: string): boolean;
  /** Number of requests seen per `METHOD path` (path without /v1/ and query). */
  callCount(method: string, path: string): number;
  /** Every request seen, without headers or bodies. */
  readonly requests: ReadonlyArray<{ method: string; path: string; namespace: string; status: number }>;
}

interface TokenEntry {
  id: string;
  accessor: string;
  namespace: string;
  policies: string[];
  meta: Record<string, string>;
  parent: string | null;
  children: Set<string>;
  displayName: string;
  numUses: number;
  /** Created with num_uses > 0: may never create tokens (it could escape its use count). */
  useLimited: boolean;
  renewable: boolean;
  creationTime: number;
  creationTtl: number;
  explicitMaxTtl: number;
  expiresAt: number | null;
  path: string;
  revoked: boolean;
}

interface LeaseEntry {
  leaseId: string;
  namespace: string;
  owner: string;
  kind: 'database' | 'aws-iam-user';
  username?: string;
  accessKey?: string;
  issuedAt: number;
  expiresAt: number;
  maxExpiresAt: number;
  ttl: number;
  revoked: boolean;
}

interface StsKey {
  accessKey: string;
  namespace: string;
  expiresAt: number;
}

interface NamespaceState {
  tokens: Map<string, TokenEntry>;
  accessors: Map<string, string>;
  leases: Map<string, LeaseEntry>;
  kv: Map<string, Array<{ data: Record<string, unknown>; created: number }>>;
  authRoles: Map<string, AuthRoleOptions>;
  dbRoles: Map<string, { ttl: number; maxTtl: number }>;
  awsRoles: Map<string, { credentialType: 'iam_user' | 'assumed_role'; ttl: number }>;
  stsKeys: Map<string, StsKey>;
}

class VaultHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(errors[0] ?? `HTTP ${status}`);
  }
}

const PERMISSION_DENIED_ACL = '1 error occurred:\n\t* permission denied\n\n';
const denied = () => new VaultHttpError(403, [PERMISSION_DENIED_ACL]);
const badToken = () => new VaultHttpError(403, ['permission denied']);
const notFound = () => new VaultHttpError(404, []);
const badRequest = (msg: string) => new VaultHttpError(400, [msg]);

/** Vault's built-in `default` policy, the parts a token needs to manage itself. */
const DEFAULT_POLICY: PolicyRules = {
  'auth/token/lookup-self': ['read'],
  'auth/token/renew-self': ['update'],
  'auth/token/revoke-self': ['update'],
  'sys/capabilities-self': ['update'],
  'sys/leases/renew': ['update'],
  'sys/leases/lookup': ['update'],
};

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomString(length: number, alphabet = BASE62): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

/** Vault's ParseDurationSecond: integer seconds, or a Go duration ("15m", "1h30m", "900s"). */
export function parseVaultDuration(value: unknown): number {
  if (value === undefined || value === null || value === '') return 0;
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value !== 'string') throw badRequest('invalid duration');
  if (/^\d+$/.test(value)) return Number(value);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  let total = 0;
  let consumed = 0;
  for (const m of value.matchAll(re)) {
    const n = Number(m[1]);
    const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    total += n * unit;
    consumed += m[0].length;
  }
  if (consumed !== value.length) throw badRequest(`time: invalid duration "${value}"`);
  return Math.trunc(total);
}

function patternMatches(pattern: string, path: string): boolean {
  const prefix = pattern.endsWith('*');
  const pat = prefix ? pattern.slice(0, -1) : pattern;
  const patParts = pat.split('/');
  const pathParts = path.split('/');
  if (!prefix && patParts.length !== pathParts.length) return false;
  if (prefix && pathParts.length < patParts.length) return false;
  for (let i = 0; i < patParts.length; i++) {
    const p = patParts[i]!;
    const s = pathParts[i]!;
    const last = i === patParts.length - 1;
    if (p === '+') continue;
    if (last && prefix) {
      if (!s.startsWith(p)) return false;
    } else if (p !== s) return false;
  }
  return true;
}

function toStringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) out[k] = String(v);
  }
  return out;
}

function toPolicyList(value: unknown): string[] {
  const raw = Array.isArray(value) ? value.map(String) : typeof value === 'string' && value ? value.split(',') : [];
  return [...new Set(raw.map((p) => p.trim().toLowerCase()).filter(Boolean))];
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch {
    throw badRequest('failed to parse JSON input: invalid character');
  }
}

export async function startFakeVault(opts: FakeVaultOptions = {}): Promise<FakeVault> {
  let clock = (opts.startTime ?? new Date()).getTime();
  const defaultTtl = opts.defaultTtlSeconds ?? 768 * 3600;
  const policies = new Map<string, PolicyRules>(Object.entries(opts.policies ?? {}));
  policies.set('default', DEFAULT_POLICY);
  const namespaces = new Map<string, NamespaceState>();
  const newNs = (): NamespaceState => ({
    tokens: new Map(),
    accessors: new Map(),
    leases: new Map(),
    kv: new Map(),
    authRoles: new Map(),
    dbRoles: new Map(),
    awsRoles: new Map(),
    stsKeys: new Map(),
  });
  for (const ns of ['', ...(opts.namespaces ?? [])]) namespaces.set(normalizeNs(ns), newNs());
  let outage: (OutageOptions & { left: number }) | null = null;
  const requests: Array<{ method: string; path: string; namespace: string; status: number }> = [];
  const counts = new Map<string, number>();

  function normalizeNs(ns: string | undefined): string {
    return (ns ?? '').replace(/^\/+|\/+$/g, '');
  }
  function nsState(ns: string): NamespaceState {
    const s = namespaces.get(ns);
    if (!s) throw new TypeError(`fake vault: unknown namespace ${ns}`);
    return s;
  }

  // ---- token tree ------------------------------------------------------------
  function revokeToken(state: NamespaceState, id: string): void {
    const t = state.tokens.get(id);
    if (!t || t.revoked) return;
    t.revoked = true;
    for (const child of t.children) revokeToken(state, child);
    for (const lease of state.leases.values()) if (lease.owner === id) lease.revoked = true;
    state.tokens.delete(id);
    state.accessors.delete(t.accessor);
    if (t.parent) state.tokens.get(t.parent)?.children.delete(id);
  }

  /** Lazy expiry, as Vault's expiration manager would have done by now. */
  function expire(state: NamespaceState): void {
    for (const t of [...state.tokens.values()]) if (t.expiresAt !== null && t.expiresAt <= clock) revokeToken(state, t.id);
    for (const l of state.leases.values()) if (!l.revoked && l.expiresAt <= clock) l.revoked = true;
  }

  function mintToken(
    state: NamespaceState,
    ns: string,
    init: {
      policies: string[];
      meta?: Record<string, string>;
      parent: string | null;
      ttl: number;
      explicitMaxTtl?: number;
      numUses?: number;
      renewable?: boolean;
      displayName?: string;
      path: string;
    },
  ): TokenEntry {
    const isRoot = init.policies.includes('root');
    let ttl = init.ttl > 0 ? init.ttl : isRoot ? 0 : defaultTtl;
    const explicitMax = init.explicitMaxTtl ?? 0;
    if (explicitMax > 0 && (ttl === 0 || ttl > explicitMax)) ttl = explicitMax;
    const t: TokenEntry = {
      id: `hvs.${randomString(24)}${ns ? `.${randomString(5)}` : ''}`,
      accessor: `${randomString(24)}${ns ? `.${randomString(5)}` : ''}`,
      namespace: ns,
      policies: [...init.policies].sort(),
      meta: init.meta ?? {},
      parent: init.parent,
      children: new Set(),
      displayName: init.displayName ?? 'token',
      numUses: init.numUses ?? 0,
      useLimited: (init.numUses ?? 0) > 0,
      renewable: ttl === 0 ? false : (init.renewable ?? true),
      creationTime: clock,
      creationTtl: ttl,
      explicitMaxTtl: explicitMax,
      expiresAt: ttl === 0 ? null : clock + ttl * 1000,
      path: init.path,
      revoked: false,
    };
    state.tokens.set(t.id, t);
    state.accessors.set(t.accessor, t.id);
    if (init.parent) state.tokens.get(init.parent)?.children.add(t.id);
    return t;
  }

  function authBody(t: TokenEntry): Record<string, unknown> {
    return {
      client_token: t.id,
      accessor: t.accessor,
      policies: t.policies,
      token_policies: t.policies,
      identity_policies: null,
      metadata: Object.keys(t.meta).length ? t.meta : null,
      lease_duration: t.creationTtl,
      renewable: t.renewable,
      entity_id: '',
      token_type: 'service',
      orphan: t.parent === null,
      mfa_requirement: null,
      num_uses: t.numUses,
    };
  }

  function lookupData(t: TokenEntry, withId: boolean): Record<string, unknown> {
    const ttl = t.expiresAt === null ? 0 : Math.max(0, Math.ceil((t.expiresAt - clock) / 1000));
    return {
      accessor: t.accessor,
      creation_time: Math.floor(t.creationTime / 1000),
      creation_ttl: t.creationTtl,
      display_name: t.displayName,
      entity_id: '',
      expire_time: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(),
      explicit_max_ttl: t.explicitMaxTtl,
      id: withId ? t.id : '',
      issue_time: new Date(t.creationTime).toISOString(),
      meta: Object.keys(t.meta).length ? t.meta : null,
      num_uses: t.numUses,
      orphan: t.parent === null,
      path: t.path,
      policies: t.policies,
      renewable: t.renewable,
      ttl,
      type: 'service',
    };
  }

  function capabilities(t: TokenEntry, path: string): Set<Capability> {
    const caps = new Set<Capability>();
    if (t.policies.includes('root')) return new Set(['create', 'read', 'update', 'delete', 'list', 'sudo']);
    for (const name of t.policies) {
      const rules = policies.get(name);
      if (!rules) continue;
      for (const [pattern, c] of Object.entries(rules)) if (patternMatches(pattern, path)) for (const cap of c) caps.add(cap);
    }
    if (caps.has('deny')) return new Set();
    return caps;
  }

  function envelope(extra: Record<string, unknown>): Record<string, unknown> {
    return { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null, auth: null, ...extra };
  }

  // ---- request handling --------------------------------------------------------
  interface Ctx {
    method: string;
    path: string;
    list: boolean;
    ns: string;
    state: NamespaceState;
    body: Record<string, unknown>;
    token: TokenEntry | null;
    /** Set by revoke-self: the token is revoked once the request is answered. */
    revokeSelf?: boolean;
  }

  function authenticate(req: IncomingMessage, ns: string): TokenEntry {
    const header = req.headers['x-vault-token'];
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const id = (Array.isArray(header) ? header[0] : header) ?? bearer;
    if (!id) throw badToken();
    for (const candidateNs of ns === '' ? [''] : [ns, '']) {
      const state = nsState(candidateNs);
      expire(state);
      const t = state.tokens.get(id);
      if (!t) continue;
      // Only the root token reaches child namespaces (see the simplifications above).
      if (candidateNs !== ns && !t.policies.includes('root')) continue;
      return t;
    }
    throw badToken();
  }

  function requiredCapability(ctx: Ctx): Capability[] {
    if (ctx.list) return ['list'];
    switch (ctx.method) {
      case 'GET':
      case 'HEAD':
        return ['read'];
      case 'DELETE':
        return ['delete'];
      default:
        return ['create', 'update'];
    }
  }

  const SUDO_PATHS = [/^auth\/token\/accessors\/?$/];

  function route(ctx: Ctx): { status: number; body?: unknown } {
    const { path, state, body } = ctx;
    const t = ctx.token!;
    const write = ctx.method === 'POST' || ctx.method === 'PUT';

    if ((path === 'auth/token/create' || path === 'auth/token/create-orphan') && write) {
      if (t.useLimited) throw badRequest('restricted use token cannot generate child tokens');
      const isSudo = capabilities(t, path).has('sudo');
      let requested = toPolicyList(body.policies);
      const noDefault = body.no_default_policy === true || body.no_default_policy === 'true';
      let addDefault = false;
      if (requested.length === 0) {
        requested = t.policies.filter((p) => p !== 'default' || !noDefault);
      } else if (!isSudo) {
        const parentSet = new Set(t.policies.filter((p) => p !== 'default'));
        if (!requested.filter((p) => p !== 'default').every((p) => parentSet.has(p))) throw badRequest('child policies must be subset of parent');
        addDefault = !noDefault && t.policies.includes('default');
      } else addDefault = !noDefault;
      let finalPolicies = [...new Set([...requested, ...(addDefault ? ['default'] : [])])];
      if (noDefault) finalPolicies = finalPolicies.filter((p) => p !== 'default');
      if (finalPolicies.includes('root') && !t.policies.includes('root')) throw badRequest('root tokens may not be created without parent token being root');
      const numUses = Number(body.num_uses ?? 0);
      if (!Number.isInteger(numUses) || numUses < 0) throw badRequest('number of uses cannot be negative');
      const ttl = parseVaultDuration(body.ttl);
      const explicitMaxTtl = parseVaultDuration(body.explicit_max_ttl);
      if (ttl < 0) throw badRequest('ttl must be positive');
      const orphan = path === 'auth/token/create-orphan' || (body.no_parent === true && isSudo);
      if (body.no_parent === true && !isSudo) throw badRequest('root or sudo privileges required to create orphan token');
      const displayName = typeof body.display_name === 'string' && body.display_name ? `token-${body.display_name}`.replace(/[^a-zA-Z0-9-]/g, '-').replace(/-$/, '') : 'token';
      const child = mintToken(state, ctx.ns, {
        policies: finalPolicies,
        meta: toStringMap(body.meta),
        parent: orphan ? null : t.id,
        ttl,
        explicitMaxTtl,
        numUses,
        renewable: body.renewable === undefined ? true : body.renewable === true || body.renewable === 'true',
        displayName,
        path,
      });
      return { status: 200, body: envelope({ auth: authBody(child) }) };
    }

    if (path === 'auth/token/lookup-self' && (ctx.method === 'GET' || write)) {
      return { status: 200, body: envelope({ data: lookupData(t, true) }) };
    }
    if (path === 'auth/token/lookup' && write) {
      const target = state.tokens.get(String(body.token ?? ''));
      if (!target) throw badRequest('bad token');
      return { status: 200, body: envelope({ data: lookupData(target, true) }) };
    }
    if (path === 'auth/token/lookup-accessor' && write) {
      const accessor = String(body.accessor ?? '');
      if (!accessor) throw badRequest('missing accessor');
      const id = state.accessors.get(accessor);
      const target = id ? state.tokens.get(id) : undefined;
      if (!target) throw badRequest('invalid accessor');
      return { status: 200, body: envelope({ data: lookupData(target, false) }) };
    }
    if (path === 'auth/token/revoke-accessor' && write) {
      const accessor = String(body.accessor ?? '');
      if (!accessor) throw badRequest('missing accessor');
      const id = state.accessors.get(accessor);
      if (!id) throw badRequest('invalid accessor');
      revokeToken(state, id);
      return { status: 204 };
    }
    if (path === 'auth/token/revoke' && write) {
      const target = String(body.token ?? '');
      if (!target) throw badRequest('missing token');
      revokeToken(state, target);
      return { status: 204 };
    }
    if (path === 'auth/token/revoke-self' && write) {
      ctx.revokeSelf = true;
      return { status: 204 };
    }
    if (path === 'auth/token/renew-self' && write) {
      if (!t.renewable || t.expiresAt === null) throw badRequest('lease is not renewable');
      const increment = parseVaultDuration(body.increment) || t.creationTtl;
      let expiresAt = clock + increment * 1000;
      if (t.explicitMaxTtl > 0) expiresAt = Math.min(expiresAt, t.creationTime + t.explicitMaxTtl * 1000);
      t.expiresAt = expiresAt;
      const auth = authBody(t);
      auth.lease_duration = Math.max(0, Math.ceil((expiresAt - clock) / 1000));
      return { status: 200, body: envelope({ auth }) };
    }
    if (path === 'auth/token/accessors' && ctx.list) {
      return { status: 200, body: envelope({ data: { keys: [...state.accessors.keys()] } }) };
    }

    if (path === 'sys/leases/revoke' && write) {
      const lease = state.leases.get(String(body.lease_id ?? ''));
      // Vault answers 204 for an unknown or already-revoked lease: revocation is idempotent.
      if (lease) lease.revoked = true;
      return { status: 204 };
    }
    if (path === 'sys/leases/renew' && write) {
      const lease = state.leases.get(String(body.lease_id ?? ''));
      if (!lease || lease.revoked) throw badRequest('lease not found');
      const increment = parseVaultDuration(body.increment) || lease.ttl;
      lease.expiresAt = Math.min(clock + increment * 1000, lease.maxExpiresAt);
      return {
        status: 200,
        body: envelope({ lease_id: lease.leaseId, renewable: true, lease_duration: Math.ceil((lease.expiresAt - clock) / 1000) }),
      };
    }
    if (path === 'sys/leases/lookup' && write) {
      const lease = state.leases.get(String(body.lease_id ?? ''));
      if (!lease || lease.revoked) throw badRequest('invalid lease');
      return {
        status: 200,
        body: envelope({
          data: { id: lease.leaseId, issue_time: new Date(lease.issuedAt).toISOString(), expire_time: new Date(lease.expiresAt).toISOString(), renewable: true, ttl: Math.ceil((lease.expiresAt - clock) / 1000) },
        }),
      };
    }

    const parts = path.split('/');
    // <mount>/creds/<role>: database or aws, whichever the mount's roles say.
    if (parts.length === 3 && parts[1] === 'creds' && ctx.method === 'GET') {
      const dbRole = state.dbRoles.get(`${parts[0]}/${parts[2]}`);
      if (dbRole) {
        const username = `v-${t.displayName.replace(/^token-?/, '') || 'token'}-${parts[2]}-${randomString(20)}-${Math.floor(clock / 1000)}`.slice(0, 63);
        const password = `${randomString(4)}-${randomString(20)}`;
        const lease = addLease(ctx, path, { kind: 'database', username }, dbRole.ttl, dbRole.maxTtl);
        return { status: 200, body: envelope({ lease_id: lease.leaseId, renewable: true, lease_duration: dbRole.ttl, data: { username, password } }) };
      }
      const awsRole = state.awsRoles.get(`${parts[0]}/${parts[2]}`);
      if (awsRole) return issueAws(ctx, awsRole);
      throw badRequest(`unknown role: ${parts[2]}`);
    }
    if (parts.length === 3 && parts[1] === 'sts' && (ctx.method === 'GET' || write)) {
      const awsRole = state.awsRoles.get(`${parts[0]}/${parts[2]}`);
      if (!awsRole) throw badRequest(`Role "${parts[2]}" not found`);
      return issueAws(ctx, { credentialType: 'assumed_role', ttl: parseVaultDuration(body.ttl) || awsRole.ttl });
    }
    if (parts.length >= 3 && parts[1] === 'data') {
      const key = `${parts[0]}/${parts.slice(2).join('/')}`;
      if (ctx.method === 'GET') {
        const versions = state.kv.get(key);
        if (!versions || versions.length === 0) throw notFound();
        const v = versions[versions.length - 1]!;
        return {
          status: 200,
          body: envelope({
            data: {
              data: v.data,
              metadata: { created_time: new Date(v.created).toISOString(), custom_metadata: null, deletion_time: '', destroyed: false, version: versions.length },
            },
          }),
        };
      }
      if (write) {
        const data = body.data;
        if (!data || typeof data !== 'object') throw badRequest('no data provided');
        const version = putKv(state, key, data as Record<string, unknown>);
        return { status: 200, body: envelope({ data: { created_time: new Date(clock).toISOString(), deletion_time: '', destroyed: false, version } }) };
      }
    }
    throw notFound();
  }

  function addLease(
    ctx: Ctx,
    path: string,
    what: { kind: 'database' | 'aws-iam-user'; username?: string; accessKey?: string },
    ttl: number,
    maxTtl: number,
  ): LeaseEntry {
    const lease: LeaseEntry = {
      leaseId: `${path}/${randomString(24)}`,
      namespace: ctx.ns,
      owner: ctx.token!.id,
      ...what,
      issuedAt: clock,
      expiresAt: clock + ttl * 1000,
      maxExpiresAt: clock + maxTtl * 1000,
      ttl,
      revoked: false,
    };
    ctx.state.leases.set(lease.leaseId, lease);
    return lease;
  }

  function issueAws(ctx: Ctx, role: { credentialType: 'iam_user' | 'assumed_role'; ttl: number }): { status: number; body: unknown } {
    const secretKey = randomString(40);
    if (role.credentialType === 'iam_user') {
      const accessKey = `AKIA${randomString(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`;
      const lease = addLease(ctx, ctx.path, { kind: 'aws-iam-user', accessKey }, role.ttl, role.ttl * 4);
      return {
        status: 200,
        body: envelope({ lease_id: lease.leaseId, renewable: true, lease_duration: role.ttl, data: { access_key: accessKey, secret_key: secretKey, security_token: null } }),
      };
    }
    // STS credentials: since Vault 1.13 they carry no lease, and revoking would not
    // invalidate them anyway (AWS cannot revoke STS keys). They simply expire.
    const accessKey = `ASIA${randomString(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`;
    ctx.state.stsKeys.set(accessKey, { accessKey, namespace: ctx.ns, expiresAt: clock + role.ttl * 1000 });
    return {
      status: 200,
      body: envelope({
        lease_id: '',
        renewable: false,
        lease_duration: role.ttl,
        data: { access_key: accessKey, secret_key: secretKey, security_token: randomString(120), ttl: role.ttl },
      }),
    };
  }

  function putKv(state: NamespaceState, key: string, data: Record<string, unknown>): number {
    const versions = state.kv.get(key) ?? [];
    versions.push({ data: structuredClone(data), created: clock });
    state.kv.set(key, versions);
    return versions.length;
  }

  function login(ctx: Ctx, mount: string): { status: number; body: unknown } {
    const { state, body } = ctx;
    const role = [...state.authRoles.values()].find((r) => (r.mount ?? r.method) === mount && (r.method === 'approle' ? r.role === body.role_id : r.role === body.role));
    const method = role?.method ?? [...state.authRoles.values()].find((r) => (r.mount ?? r.method) === mount)?.method;
    if (!method) throw new VaultHttpError(404, [`no handler for route "${mount}/login". route entry not found.`]);
    if (method === 'approle') {
      if (!body.role_id) throw badRequest('missing role_id');
      if (!role || body.secret_id !== role.secret) throw badRequest('invalid role or secret ID');
    } else if (method === 'jwt') {
      if (!body.role) throw badRequest('missing role');
      if (!role) throw badRequest(`role "${String(body.role)}" could not be found`);
      if (body.jwt !== role.secret) throw badRequest('error validating token: invalid JWT');
    } else {
      if (!role) throw badRequest(`invalid role name "${String(body.role)}"`);
      if (body.jwt !== role.secret) throw denied();
    }
    const t = mintToken(state, ctx.ns, {
      policies: [...new Set([...role.policies.map((p) => p.toLowerCase()), 'default'])],
      meta: method === 'approle' ? { role_name: role.role } : { role: role.role },
      parent: null,
      ttl: role.ttlSeconds ?? 3600,
      displayName: `${mount}-${role.role}`,
      path: `auth/${mount}/login`,
    });
    return { status: 200, body: envelope({ auth: authBody(t) }) };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake-vault');
    const method = (req.method ?? 'GET').toUpperCase();
    const ns = normalizeNs(Array.isArray(req.headers['x-vault-namespace']) ? req.headers['x-vault-namespace'][0] : req.headers['x-vault-namespace']);
    const path = url.pathname.replace(/^\/v1\//, '').replace(/\/+$/, '');
    const listParam = url.searchParams.get('list');
    const list = method === 'LIST' || (method === 'GET' && (listParam === 'true' || listParam === '1'));
    const key = `${list ? 'LIST' : method === 'PUT' ? 'POST' : method} ${path}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    let status = 500;
    let payload: unknown;
    try {
      if (outage) {
        if (outage.count !== undefined && outage.left <= 0) outage = null;
        else {
          outage.left--;
          throw new VaultHttpError(outage.status, [outage.status === 503 ? 'Vault is sealed' : 'internal error']);
        }
      }
      if (!url.pathname.startsWith('/v1/')) throw notFound();
      if (!namespaces.has(ns)) throw badToken();
      const state = nsState(ns);
      expire(state);
      const body = method === 'GET' || method === 'HEAD' ? {} : await readBody(req);
      const ctx: Ctx = { method: method === 'PUT' ? 'POST' : method, path, list, ns, state, body, token: null };
      if (path === 'sys/health' && method === 'GET') {
        status = 200;
        payload = { initialized: true, sealed: false, standby: false, version: '1.17.0-fake', server_time_utc: Math.floor(clock / 1000) };
      } else {
        const loginMatch = /^auth\/(.+)\/login$/.exec(path);
        let result: { status: number; body?: unknown };
        if (loginMatch && loginMatch[1] !== 'token' && (method === 'POST' || method === 'PUT')) {
          result = login(ctx, loginMatch[1]!);
        } else {
          const t = authenticate(req, ns);
          ctx.token = t;
          const caps = capabilities(t, path);
          const need = requiredCapability(ctx);
          if (!need.some((c) => caps.has(c))) throw denied();
          if (SUDO_PATHS.some((re) => re.test(path)) && !caps.has('sudo')) throw denied();
          // Use counting happens after the ACL check, as in Vault: the request uses the token.
          let exhausted = false;
          if (t.numUses > 0) {
            t.numUses--;
            exhausted = t.numUses === 0;
          }
          try {
            result = route(ctx);
          } finally {
            const tokenState = nsState(t.namespace);
            if (exhausted || ctx.revokeSelf) revokeToken(tokenState, t.id);
          }
        }
        status = result.status;
        payload = result.body;
      }
    } catch (err) {
      if (err instanceof VaultHttpError) {
        status = err.status;
        payload = { errors: err.errors };
      } else {
        status = 500;
        payload = { errors: ['internal error'] };
      }
    }
    requests.push({ method: key.split(' ')[0]!, path, namespace: ns, status });
    if (status === 204 || payload === undefined) {
      res.writeHead(status === 200 ? 204 : status);
      res.end();
      return;
    }
    const text = JSON.stringify(payload);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const root = mintToken(nsState(''), '', { policies: ['root'], parent: null, ttl: 0, path: 'auth/token/root' });

  const info = (t: TokenEntry): FakeTokenInfo => ({
    id: t.id,
    accessor: t.accessor,
    namespace: t.namespace,
    policies: [...t.policies],
    meta: { ...t.meta },
    parent: t.parent,
    orphan: t.parent === null,
    displayName: t.displayName,
    numUses: t.numUses,
    renewable: t.renewable,
    creationTtl: t.creationTtl,
    explicitMaxTtl: t.explicitMaxTtl,
    expiresAt: t.expiresAt,
  });
  const liveState = (ns?: string) => {
    const s = nsState(normalizeNs(ns));
    expire(s);
    return s;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    rootToken: root.id,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
    setOutage(o) {
      outage = o ? { ...o, left: o.count ?? Number.POSITIVE_INFINITY } : null;
    },
    advance(seconds) {
      clock += seconds * 1000;
    },
    now: () => clock,
    setPolicy(name, rules) {
      policies.set(name, rules);
    },
    addAuthRole(o) {
      liveState(o.namespace).authRoles.set(`${o.mount ?? o.method}:${o.role}`, { ...o });
    },
    addDatabaseRole(role, o = {}) {
      liveState(o.namespace).dbRoles.set(`${o.mount ?? 'database'}/${role}`, { ttl: o.ttlSeconds ?? 3600, maxTtl: o.maxTtlSeconds ?? 86400 });
    },
    addAwsRole(role, o) {
      liveState(o.namespace).awsRoles.set(`${o.mount ?? 'aws'}/${role}`, { credentialType: o.credentialType, ttl: o.ttlSeconds ?? 3600 });
    },
    seedKv(path, data, o = {}) {
      return putKv(liveState(o.namespace), `${o.mount ?? 'secret'}/${path}`, data);
    },
    createToken(o) {
      const ns = normalizeNs(o.namespace);
      const t = mintToken(liveState(ns), ns, {
        policies: [...new Set([...o.policies, 'default'])],
        meta: o.meta,
        parent: null,
        ttl: o.ttlSeconds ?? 0,
        numUses: o.numUses,
        path: 'auth/token/create',
      });
      return { token: t.id, accessor: t.accessor };
    },
    tokens: (ns) => [...liveState(ns).tokens.values()].map(info),
    tokenByAccessor(accessor, ns) {
      const s = liveState(ns);
      const id = s.accessors.get(accessor);
      const t = id ? s.tokens.get(id) : undefined;
      return t ? info(t) : undefined;
    },
    isTokenValid: (token, ns) => liveState(ns).tokens.has(token),
    leases: (ns) =>
      [...liveState(ns).leases.values()].map((l) => ({
        leaseId: l.leaseId,
        namespace: l.namespace,
        ownerAccessor: nsState(l.namespace).tokens.get(l.owner)?.accessor ?? '',
        kind: l.kind,
        username: l.username,
        accessKey: l.accessKey,
        expiresAt: l.expiresAt,
        revoked: l.revoked,
      })),
    isLeaseValid(leaseId, ns) {
      const l = liveState(ns).leases.get(leaseId);
      return !!l && !l.revoked;
    },
    isDatabaseUserValid(username, ns) {
      return [...liveState(ns).leases.values()].some((l) => l.kind === 'database' && l.username === username && !l.revoked);
    },
    isAwsKeyValid(accessKey, ns) {
      const s = liveState(ns);
      const sts = s.stsKeys.get(accessKey);
      if (sts) return sts.expiresAt > clock;
      return [...s.leases.values()].some((l) => l.kind === 'aws-iam-user' && l.accessKey === accessKey && !l.revoked);
    },
    callCount: (method, path) => counts.get(`${method.toUpperCase() === 'PUT' ? 'POST' : method.toUpperCase()} ${path}`) ?? 0,
  };
}
