/**
 * Verifies a workload identity token (CI OIDC JWT, Kubernetes projected service-account
 * token) against the configured issuers and derives the build key from its claims.
 *
 * Every failure is `UNAUTHENTICATED` with a `details.reason` from a closed set; the
 * message never echoes the token.
 */
import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { StagegateError } from '../../sdk/errors';
import { ALLOWED_ALGORITHMS, type IssuerConfig } from '../config/config-schema';

export type IdentityFailure =
  | 'missing'
  | 'too-large'
  | 'malformed'
  | 'unknown-issuer'
  | 'algorithm'
  | 'unknown-key'
  | 'signature'
  | 'expired'
  | 'not-yet-valid'
  | 'audience'
  | 'claim-missing'
  | 'jwks-unavailable';

export interface VerifiedIdentity {
  /** Configured issuer name. */
  readonly issuer: string;
  readonly claims: Readonly<JWTPayload & Record<string, unknown>>;
  /** The build this token belongs to, from the issuer's `buildKey` template. */
  readonly build: string;
  /** sha256 hex of the raw token: for audit and replay bookkeeping, never the token. */
  readonly tokenSha256: string;
}

export interface IdentityVerifier {
  verify(token: string | undefined): Promise<VerifiedIdentity>;
}

/** Time limit of one JWKS or discovery fetch, ms. */
const JWKS_TIMEOUT_MS = 5_000;

function fail(reason: IdentityFailure, message: string, extra: Record<string, unknown> = {}): StagegateError {
  return new StagegateError('UNAUTHENTICATED', message, { details: { reason, ...extra } });
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Fill `{claim}` placeholders; a missing or non-scalar claim fails closed. */
export function renderBuildKey(template: string, claims: Record<string, unknown>): string {
  return template.replace(/\{([^{}]+)\}/g, (_, claim: string) => {
    const value = claims[claim];
    if (typeof value === 'string' && value.length > 0) return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    throw fail('claim-missing', `identity token lacks the claim '${claim}' that the build key needs`, { claim });
  });
}

interface IssuerEntry {
  readonly config: IssuerConfig;
  keys: JWTVerifyGetKey | undefined;
  loading: Promise<JWTVerifyGetKey> | undefined;
}

/** OIDC discovery: the document must name the same issuer (OpenID Connect Discovery §4.3). */
async function discoverJwksUri(issuer: string): Promise<string> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const res = await fetch(url, { signal: AbortSignal.timeout(JWKS_TIMEOUT_MS), redirect: 'error' });
  if (!res.ok) throw new Error(`discovery answered HTTP ${res.status}`);
  const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (doc.issuer !== issuer) throw new Error('discovery document names another issuer');
  if (typeof doc.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
  return doc.jwks_uri;
}

export function createIdentityVerifier(issuers: readonly IssuerConfig[]): IdentityVerifier {
  const byIss = new Map<string, IssuerEntry>();
  for (const config of issuers) byIss.set(config.issuer, { config, keys: undefined, loading: undefined });
  // Before the issuer is known, the largest cap of any issuer bounds the parse.
  const maxBytesAnyIssuer = Math.max(...issuers.map((i) => i.maxTokenBytes));

  async function keysFor(entry: IssuerEntry): Promise<JWTVerifyGetKey> {
    if (entry.keys) return entry.keys;
    if (entry.config.jwks) return (entry.keys = createLocalJWKSet(entry.config.jwks as Parameters<typeof createLocalJWKSet>[0]));
    entry.loading ??= (async () => {
      const uri = entry.config.jwksUri ?? (await discoverJwksUri(entry.config.issuer));
      return createRemoteJWKSet(new URL(uri), {
        cacheMaxAge: entry.config.jwksCacheSeconds * 1000,
        // An unknown kid refetches the JWKS (key rotation) at most once per cooldown.
        cooldownDuration: entry.config.jwksCooldownSeconds * 1000,
        timeoutDuration: JWKS_TIMEOUT_MS,
      });
    })();
    try {
      entry.keys = await entry.loading;
      return entry.keys;
    } catch {
      // Try discovery again next time. The fetch error's text is not passed on: callers get
      // the reason code; what failed is the configured issuer URL, visible to operators.
      entry.loading = undefined;
      throw fail('jwks-unavailable', `cannot load the signing keys of issuer '${entry.config.name}'`, { issuer: entry.config.name });
    }
  }

  return {
    async verify(token) {
      if (token === undefined || token.length === 0) throw fail('missing', 'an identity token is required (Authorization: Bearer …)');
      if (Buffer.byteLength(token) > maxBytesAnyIssuer) throw fail('too-large', `identity token exceeds ${maxBytesAnyIssuer} bytes`);
      let iss: unknown;
      let alg: unknown;
      try {
        iss = decodeJwt(token).iss;
        alg = decodeProtectedHeader(token).alg;
      } catch {
        throw fail('malformed', 'identity token is not a well-formed JWT');
      }
      const entry = typeof iss === 'string' ? byIss.get(iss) : undefined;
      if (!entry) throw fail('unknown-issuer', 'identity token is from an issuer this broker does not trust');
      const cfg = entry.config;
      if (Buffer.byteLength(token) > cfg.maxTokenBytes) throw fail('too-large', `identity token exceeds ${cfg.maxTokenBytes} bytes`);
      const algorithms = [...(cfg.algorithms ?? ALLOWED_ALGORITHMS)];
      if (typeof alg !== 'string' || !algorithms.includes(alg as (typeof algorithms)[number])) {
        throw fail('algorithm', `identity token algorithm is not allowed`, { issuer: cfg.name, alg: typeof alg === 'string' ? alg.slice(0, 16) : null });
      }
      const keys = await keysFor(entry);
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: cfg.issuer,
          audience: cfg.audience,
          algorithms,
          clockTolerance: cfg.clockSkewSeconds,
          requiredClaims: ['exp'],
        }));
      } catch (err) {
        throw mapJoseError(err, cfg.name);
      }
      const claims = payload as JWTPayload & Record<string, unknown>;
      const build = renderBuildKey(cfg.buildKey, claims);
      return { issuer: cfg.name, claims, build, tokenSha256: sha256Hex(token) };
    },
  };
}

function mapJoseError(err: unknown, issuer: string): StagegateError {
  const d = { issuer };
  if (err instanceof joseErrors.JWTExpired) return fail('expired', 'identity token has expired', d);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' || err.claim === 'iat') return fail('not-yet-valid', 'identity token is not yet valid', { ...d, claim: err.claim });
    if (err.claim === 'aud') return fail('audience', 'identity token is not meant for this broker (audience)', d);
    return fail('claim-missing', `identity token claim '${err.claim}' is missing or invalid`, { ...d, claim: err.claim });
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) return fail('unknown-key', 'identity token is signed with a key the issuer does not publish', d);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return fail('signature', 'identity token signature is invalid', d);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return fail('algorithm', 'identity token algorithm is not allowed', d);
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JOSENotSupported) {
    return fail('jwks-unavailable', `cannot use the signing keys of issuer '${issuer}'`, d);
  }
  if (err instanceof StagegateError) return err;
  return fail('malformed', 'identity token could not be verified', d);
}
