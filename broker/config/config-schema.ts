/**
 * The broker's one YAML file: listener, store, identity issuers, providers and policy
 * rules. This is the contract of issue #2 (extend it, do not rename). Provider
 * sections and grant params are validated in a second pass by each provider type's own
 * schema; `requires:` by the provenance module (see load-config.ts).
 */
import { z } from 'zod';
import { durationSchema } from './duration';

/** Defaults, with units. */
export const DEFAULTS = {
  /** Stage lifetime, seconds. */
  ttlSeconds: 15 * 60,
  /** A stage with no heartbeat for this long is reaped, seconds. */
  heartbeatSeconds: 30,
  /** Accepted clock skew on `exp`/`nbf`/`iat`, seconds. */
  clockSkewSeconds: 30,
  /** Largest identity token accepted, bytes (CI tokens are 1-2 KiB; Node caps all headers at 16 KiB). */
  maxTokenBytes: 8 * 1024,
  /** Least time between JWKS refetches caused by an unknown `kid`, seconds. */
  jwksCooldownSeconds: 30,
  /** How long a fetched JWKS is used before refetching, seconds. */
  jwksCacheSeconds: 600,
  /** Largest request body, bytes. */
  maxBodyBytes: 1024 * 1024,
  /** How often the reaper runs, milliseconds. */
  reaperIntervalMs: 1000,
  /** First retry delay of a failed revocation, milliseconds (doubles up to the max). */
  revokeBackoffInitialMs: 500,
  /** Longest retry delay of a failed revocation, milliseconds. */
  revokeBackoffMaxMs: 60_000,
} as const;

/** Names of issuers, providers, rules, stages and grants: 1-63 of `[A-Za-z0-9._-]`, starting alphanumeric. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const name = (what: string) =>
  z.string().regex(NAME, `${what} must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`);

/** Only asymmetric algorithms: never `none`, never HMAC (a public key must not verify as an HMAC secret). */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

export const issuerSchema = z
  .object({
    name: name('issuer name'),
    issuer: z.string().url(),
    jwksUri: z.string().url().optional(),
    /** Inline JWKS (air-gapped clusters, tests). */
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    buildKey: z.string().min(1).regex(/\{[^{}]+\}/, 'buildKey must reference at least one claim, e.g. {run_id}'),
    algorithms: z.array(z.enum(ALLOWED_ALGORITHMS)).min(1).optional(),
    clockSkewSeconds: z.number().int().min(0).max(300).default(DEFAULTS.clockSkewSeconds),
    maxTokenBytes: z.number().int().min(512).max(16 * 1024).default(DEFAULTS.maxTokenBytes),
    jwksCooldownSeconds: z.number().int().min(1).max(3600).default(DEFAULTS.jwksCooldownSeconds),
    jwksCacheSeconds: z.number().int().min(10).max(86400).default(DEFAULTS.jwksCacheSeconds),
  })
  .strict();

const claimPattern = z.union([z.string(), z.boolean(), z.number()]);

export const grantBaseSchema = z
  .object({
    name: name('grant name'),
    provider: name('provider name'),
  })
  .passthrough();

export const stageSchema = z
  .object({
    phase: z.enum(['run', 'install']).default('run'),
    ttl: durationSchema.default(DEFAULTS.ttlSeconds),
    maxTtl: durationSchema.optional(),
    heartbeat: durationSchema.default(DEFAULTS.heartbeatSeconds),
    /** A stage opens once per build (attempt); a replayed identity token cannot reopen it. */
    once: z.boolean().default(true),
    /** Open only after an install phase of the same build closed cleanly. */
    requireInstallPhase: z.boolean().default(false),
    grants: z.array(grantBaseSchema).default([]),
    requires: z.array(z.unknown()).optional(),
  })
  .strict();

export const ruleSchema = z
  .object({
    name: name('rule name'),
    issuer: name('issuer name'),
    claims: z.record(z.string().min(1), z.union([claimPattern, z.array(claimPattern).min(1)])).default({}),
    stages: z.record(z.string().regex(NAME, 'stage name must be 1-63 characters of letters, digits, ., _ or -'), stageSchema),
  })
  .strict();

export const configSchema = z
  .object({
    listen: z
      .object({ host: z.string().min(1).default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(8080) })
      .strict()
      .default({ host: '127.0.0.1', port: 8080 }),
    store: z
      .object({
        sqlite: z.object({ path: z.string().min(1) }).strict().optional(),
      })
      .strict()
      .refine((s) => s.sqlite !== undefined, 'configure store.sqlite')
      .default({ sqlite: { path: './stagegate.db' } }),
    logging: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
    admin: z
      .object({
        /** sha256 hex digests of admin tokens (never the tokens themselves). */
        tokenSha256: z.array(z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase sha256 hex digest')).default([]),
      })
      .strict()
      .default({ tokenSha256: [] }),
    limits: z
      .object({ maxBodyBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(DEFAULTS.maxBodyBytes) })
      .strict()
      .default({ maxBodyBytes: DEFAULTS.maxBodyBytes }),
    reaper: z
      .object({
        intervalMs: z.number().int().min(50).max(60_000).default(DEFAULTS.reaperIntervalMs),
        revokeBackoffInitialMs: z.number().int().min(10).default(DEFAULTS.revokeBackoffInitialMs),
        revokeBackoffMaxMs: z.number().int().min(10).default(DEFAULTS.revokeBackoffMaxMs),
      })
      .strict()
      .default({
        intervalMs: DEFAULTS.reaperIntervalMs,
        revokeBackoffInitialMs: DEFAULTS.revokeBackoffInitialMs,
        revokeBackoffMaxMs: DEFAULTS.revokeBackoffMaxMs,
      }),
    /** Development only: a local OIDC issuer served by the broker under /demo (see docs/config.md). */
    demoIssuer: z
      .object({
        enabled: z.boolean().default(false),
        /** The `issuers[].name` whose signing key the demo issuer supplies. */
        issuer: name('issuer name').default('demo'),
        /** Claims every demo token carries unless the request overrides them. */
        claims: z.record(z.string(), z.unknown()).default({}),
        /** Demo token lifetime, seconds. */
        tokenTtlSeconds: z.number().int().min(30).max(3600).default(300),
      })
      .strict()
      .default({ enabled: false, issuer: 'demo', claims: {}, tokenTtlSeconds: 300 }),
    issuers: z.array(issuerSchema).min(1),
    providers: z.record(name('provider name'), z.object({ type: z.string().min(1) }).passthrough()),
    rules: z.array(ruleSchema).min(1),
  })
  .strict();

export type RawConfig = z.infer<typeof configSchema>;
export type IssuerConfig = z.infer<typeof issuerSchema>;
export type RuleConfig = z.infer<typeof ruleSchema>;
export type StageConfig = z.infer<typeof stageSchema>;
