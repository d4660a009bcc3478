/**
 * Config and grant schemas of the `vault` provider, validated once at broker start.
 *
 * Secrets are never accepted inline: the broker's own Vault credential is named by a
 * file or an environment variable, and the schemas are strict, so a stray
 * `token: hvs.…` or `secretId: …` in the YAML is rejected as an unknown key instead of
 * being silently accepted (and later echoed in a config dump).
 */
import { z } from 'zod';

/** Where Kubernetes projects the pod's service-account token by default. */
export const DEFAULT_KUBERNETES_JWT_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** Per-request timeout towards Vault, milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** Attempts per call for transient failures (408/429/5xx/network), including the first. */
export const DEFAULT_RETRY_ATTEMPTS = 3;
/** First retry delay, milliseconds; doubled per attempt. */
export const DEFAULT_RETRY_BASE_DELAY_MS = 100;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');
const filePath = z.string().min(1);
const mount = z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'must be a Vault mount path without leading or trailing slash');

/** A Vault duration: whole seconds, or a Go-style duration string such as `"15m"` or `"1h30m"`. */
export const vaultDurationSchema = z.union([
  z.number().int().positive(),
  z.string().regex(/^(\d+|(\d+(h|m|s))+)$/, 'must be seconds or a duration such as "15m" or "1h30m"'),
]);

/** Seconds in a {@link vaultDurationSchema} value. */
export function durationSeconds(value: number | string): number {
  if (typeof value === 'number') return value;
  if (/^\d+$/.test(value)) return Number(value);
  let total = 0;
  for (const m of value.matchAll(/(\d+)(h|m|s)/g)) total += Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  return total;
}

const exactlyOne =
  <K extends string>(a: K, b: K) =>
  (v: Partial<Record<K, unknown>>) =>
    (v[a] === undefined) !== (v[b] === undefined);

const tokenAuth = z
  .strictObject({
    method: z.literal('token'),
    /** File holding the broker's Vault token (e.g. a Vault Agent sink); re-read when Vault refuses the token. */
    tokenFile: filePath.optional(),
    /** Environment variable holding the broker's Vault token. */
    tokenEnv: envName.optional(),
  })
  .refine(exactlyOne('tokenFile', 'tokenEnv'), { message: 'set exactly one of tokenFile, tokenEnv' });

const approleAuth = z
  .strictObject({
    method: z.literal('approle'),
    /** AppRole role_id (an identifier, not a secret). */
    roleId: z.string().min(1),
    /** File holding the secret_id (re-read at every login). */
    secretIdFile: filePath.optional(),
    /** Environment variable holding the secret_id. */
    secretIdEnv: envName.optional(),
    /** Auth mount path, default `approle`. */
    mount: mount.default('approle'),
  })
  .refine(exactlyOne('secretIdFile', 'secretIdEnv'), { message: 'set exactly one of secretIdFile, secretIdEnv' });

const jwtAuth = z.strictObject({
  method: z.literal('jwt'),
  /** Vault JWT auth role. */
  role: z.string().min(1),
  /** File holding the JWT (re-read at every login, so rotated tokens are picked up). */
  jwtFile: filePath,
  /** Auth mount path, default `jwt`. */
  mount: mount.default('jwt'),
});

const kubernetesAuth = z.strictObject({
  method: z.literal('kubernetes'),
  /** Vault Kubernetes auth role. */
  role: z.string().min(1),
  /** Service-account token file, default {@link DEFAULT_KUBERNETES_JWT_FILE}; re-read at every login (kubelet rotates it). */
  jwtFile: filePath.default(DEFAULT_KUBERNETES_JWT_FILE),
  /** Auth mount path, default `kubernetes`. */
  mount: mount.default('kubernetes'),
});

export const vaultAuthSchema = z.discriminatedUnion('method', [tokenAuth, approleAuth, jwtAuth, kubernetesAuth]);

export const vaultConfigSchema = z.strictObject({
  type: z.literal('vault'),
  /** Vault address, e.g. `https://vault.example.com:8200` (no `/v1`). */
  address: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//.test(u) && !/\/v1\/?$/.test(u), 'must be an http(s) URL without /v1'),
  /** Vault Enterprise namespace for every call (sent as `X-Vault-Namespace`). */
  namespace: z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/).optional(),
  auth: vaultAuthSchema,
  tls: z
    .strictObject({
      /** PEM bundle of CAs to trust for the Vault server. */
      caFile: filePath.optional(),
      /** Client certificate (PEM) for Vault's TLS client auth. */
      certFile: filePath.optional(),
      /** Client key (PEM). */
      keyFile: filePath.optional(),
      /** Disable server certificate verification. For local development only. Default false. */
      insecureSkipVerify: z.boolean().default(false),
    })
    .optional(),
  /** Per-request timeout, milliseconds. Default {@link DEFAULT_TIMEOUT_MS}. */
  timeoutMs: z.number().int().min(100).max(120_000).default(DEFAULT_TIMEOUT_MS),
  retry: z
    .strictObject({
      /** Attempts per call, including the first. Default {@link DEFAULT_RETRY_ATTEMPTS}. */
      attempts: z.number().int().min(1).max(10).default(DEFAULT_RETRY_ATTEMPTS),
      /** First backoff delay, ms, doubled per attempt. Default {@link DEFAULT_RETRY_BASE_DELAY_MS}. */
      baseDelayMs: z.number().int().min(0).max(10_000).default(DEFAULT_RETRY_BASE_DELAY_MS),
    })
    .default({ attempts: DEFAULT_RETRY_ATTEMPTS, baseDelayMs: DEFAULT_RETRY_BASE_DELAY_MS }),
});

const policyName = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'must be a Vault policy name');
/** A Vault API path relative to /v1: no leading slash, no `..`, no query string. */
const apiPath = z
  .string()
  .regex(/^[A-Za-z0-9_.@=-]+(\/[A-Za-z0-9_.@=-]+)+$/, 'must be a Vault path such as "database/creds/app"')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."');

const tokenGrant = z.strictObject({
  type: z.literal('token'),
  /** Policies of the minted token (besides `default` unless noDefaultPolicy). */
  policies: z.array(policyName).min(1),
  /** Token TTL; capped at the stage's TTL (the default). */
  ttl: vaultDurationSchema.optional(),
  /** Number of requests the token may make; 0 (default) = unlimited. Note that a lookup-self counts as a use. */
  numUses: z.number().int().min(0).default(0),
  /** Whether the stage process may renew the token (never beyond the stage's max TTL). Default true. */
  renewable: z.boolean().default(true),
  /** Vault display name (Vault prefixes `token-`); default `stagegate-<stage>`. */
  displayName: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
  /** Do not attach Vault's `default` policy. Default false. */
  noDefaultPolicy: z.boolean().default(false),
});

const dynamicGrant = z.strictObject({
  type: z.literal('dynamic'),
  /** Secrets-engine path, e.g. `database/creds/app` or `aws/creds/deploy`. */
  path: apiPath,
  /** HTTP method: `GET` (default) or `PUT` (e.g. `aws/sts/:role` with a body). */
  method: z.enum(['GET', 'PUT']).default('GET'),
  /** Request body for `PUT`. Non-secret parameters only (e.g. `{ ttl: "15m" }`). */
  body: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  /** `aws` maps access_key/secret_key/security_token to an AWS credential; `secret` (default) passes data through. */
  kind: z.enum(['aws', 'secret']).default('secret'),
  /**
   * Policies of the per-stage token that reads the secret and owns its lease. Default:
   * the broker's own policies. The lease dies with that token, at the latest at the stage's max TTL.
   */
  policies: z.array(policyName).min(1).optional(),
});

const kvGrant = z.strictObject({
  type: z.literal('kv'),
  /** Secret path inside the KV v2 mount, e.g. `ci/npm` (read from `<mount>/data/<path>`). */
  path: z.string().regex(/^[A-Za-z0-9_.@=-]+(\/[A-Za-z0-9_.@=-]+)*$/, 'must be a KV path such as "ci/npm"'),
  /** KV v2 mount, default `secret`. */
  mount: mount.default('secret'),
  /**
   * Must be `true`: a KV value is static and cannot be revoked at stage exit. Writing it
   * says the policy author knows and accepts that (revocation is reported as `none`).
   */
  static: z.literal(true, { message: 'kv grants hand out a static secret that cannot be revoked; set static: true to accept that' }),
});

export const vaultGrantSchema = z.discriminatedUnion('type', [tokenGrant, dynamicGrant, kvGrant]);

export type VaultConfig = z.infer<typeof vaultConfigSchema>;
export type VaultAuthConfig = z.infer<typeof vaultAuthSchema>;
export type VaultGrant = z.infer<typeof vaultGrantSchema>;
export type VaultTokenGrant = z.infer<typeof tokenGrant>;
export type VaultDynamicGrant = z.infer<typeof dynamicGrant>;
export type VaultKvGrant = z.infer<typeof kvGrant>;
