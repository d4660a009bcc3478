/**
 * Config and grant schemas of the `gcp-iam` provider. Validated once at broker start
 * (zod names every bad field by its path); the provider trusts them afterwards.
 *
 * The broker's own Google credentials are deliberately NOT configurable here: they come
 * from Application Default Credentials (GKE Workload Identity, the metadata server, or
 * `GOOGLE_APPLICATION_CREDENTIALS` set by the operator), never from a key file named in
 * the broker's config, which could end up in a chart or a repository.
 */
import { z } from 'zod';

/** The OAuth scope granted when a grant names none. */
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

/**
 * IAM Credentials' ceiling for `lifetime`, seconds (1 h). 12 h is possible only with the
 * `constraints/iam.allowServiceAccountCredentialLifetimeExtension` org-policy exception,
 * which stagegate does not use: its tokens cannot be revoked, so they must be short.
 */
export const MAX_TOKEN_LIFETIME_SECONDS = 3600;

/**
 * Default token lifetime, seconds (10 min). Short because an access token cannot be
 * revoked: this is how long a token may outlive its stage. Long enough that the stage's
 * google-auth-library (which re-fetches 5 min before expiry) caches it between refreshes.
 */
export const DEFAULT_LIFETIME_SECONDS = 600;

/**
 * Floor for a configured lifetime, seconds. The API documents no minimum; below a minute
 * the broker would do little but refresh, and the stage's google-auth-library (5 min
 * eager-refresh window) would hit the local metadata endpoint on nearly every call.
 */
export const MIN_LIFETIME_SECONDS = 60;

/**
 * Default refresh margin, seconds (6 min): the broker mints the next token this long
 * before the current one expires, so the token the stage sees always has more than the
 * 5 min google-auth-library wants and is cached there. Capped at 3/4 of a token's life.
 */
export const DEFAULT_REFRESH_BEFORE_SECONDS = 360;

/** Default per-attempt timeout of a generateAccessToken call, milliseconds. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** Default attempts per call (1 + retries), retrying only 408/429/5xx/network failures. */
export const DEFAULT_MAX_ATTEMPTS = 3;

/**
 * A service-account email. Google accepts a numeric unique id too, but the email is
 * what the stage's SDK reports as `.../default/email`, so stagegate requires it.
 */
const SERVICE_ACCOUNT_EMAIL = /^[a-z0-9](?:[a-z0-9._-]{0,98}[a-z0-9])?@[a-z0-9](?:[a-z0-9.-]{0,253}[a-z0-9])?\.[a-z]{2,}$/;
/** A GCP project id: 6–30 of lowercase letters, digits and hyphens, starting with a letter. */
const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
/** Hosts to which the broker's bearer token may travel over plain `http`. */
const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[?::1\]?)$/;

export const serviceAccountEmail = z
  .string()
  .regex(SERVICE_ACCOUNT_EMAIL, 'must be a service-account email such as deployer@my-project.iam.gserviceaccount.com');

export const gcpIamConfigSchema = z
  .object({
    type: z.literal('gcp-iam'),
    /**
     * Endpoint override (Private Service Connect, a regional endpoint, or a local fake in
     * tests). Default: `iamcredentials.googleapis.com:443` over https.
     */
    endpoint: z
      .object({
        host: z.string().min(1).max(253),
        port: z.number().int().min(1).max(65_535).default(443),
        protocol: z.enum(['https', 'http']).default('https'),
      })
      .strict()
      .refine((e) => e.protocol === 'https' || LOOPBACK_HOST.test(e.host), {
        // The broker's own OAuth token travels in the Authorization header: plain http
        // anywhere but loopback would hand it to the network.
        message: 'protocol http is allowed only for a loopback host (127.0.0.0/8, localhost, ::1)',
        path: ['protocol'],
      })
      .optional(),
    /**
     * Project id delivered to the stage as metadata (`project/project-id`,
     * `GOOGLE_CLOUD_PROJECT`) so its google-auth-library skips slow probes. Default: a
     * grant's `projectId`, else the project in the service account's
     * `NAME@PROJECT.iam.gserviceaccount.com` email.
     */
    projectId: z.string().regex(PROJECT_ID, 'must be a GCP project id').optional(),
    /** Default token lifetime, seconds (60–3600, default 600). */
    lifetimeSeconds: z.number().int().min(MIN_LIFETIME_SECONDS).max(MAX_TOKEN_LIFETIME_SECONDS).default(DEFAULT_LIFETIME_SECONDS),
    /** Refresh this long before a token expires, seconds (0–3600, default 360; capped at 3/4 of a token's life). */
    refreshBeforeSeconds: z.number().int().min(0).max(MAX_TOKEN_LIFETIME_SECONDS).default(DEFAULT_REFRESH_BEFORE_SECONDS),
    /** Per-attempt timeout of a generateAccessToken call, milliseconds (100–60000, default 10000). */
    requestTimeoutMs: z.number().int().min(100).max(60_000).default(DEFAULT_REQUEST_TIMEOUT_MS),
    /** Attempts per call, retrying only 408/429/5xx/network failures (1–5, default 3). */
    maxAttempts: z.number().int().min(1).max(5).default(DEFAULT_MAX_ATTEMPTS),
  })
  .strict();

export const gcpIamGrantSchema = z
  .object({
    /** The service account whose token the stage gets. The broker needs `roles/iam.serviceAccountTokenCreator` on it. */
    serviceAccount: serviceAccountEmail,
    /** OAuth scopes of the token (default `[cloud-platform]`); narrow them where the APIs allow. */
    scopes: z.array(z.string().min(1).max(512)).min(1).max(50).default([CLOUD_PLATFORM_SCOPE]),
    /**
     * Delegation chain, in order: the broker must be a token creator on the first, each on
     * the next, the last on `serviceAccount`. Usually empty.
     */
    delegates: z.array(serviceAccountEmail).max(10).default([]),
    /** Token lifetime for this grant, seconds (60–3600); default the provider's `lifetimeSeconds`. */
    lifetimeSeconds: z.number().int().min(MIN_LIFETIME_SECONDS).max(MAX_TOKEN_LIFETIME_SECONDS).optional(),
    /** Project id for the stage's metadata; overrides the provider's `projectId`. */
    projectId: z.string().regex(PROJECT_ID, 'must be a GCP project id').optional(),
  })
  .strict();

export type GcpIamConfig = z.output<typeof gcpIamConfigSchema>;
export type GcpIamConfigInput = z.input<typeof gcpIamConfigSchema>;
export type GcpIamGrant = z.output<typeof gcpIamGrantSchema>;
export type GcpIamGrantInput = z.input<typeof gcpIamGrantSchema>;

/** The project in a `NAME@PROJECT.iam.gserviceaccount.com` email, if it has that form. */
export function projectIdFromServiceAccountEmail(email: string): string | undefined {
  const m = /@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$/.exec(email);
  return m?.[1];
}
