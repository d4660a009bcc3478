/**
 * The one small interface every credential backend implements. The broker's stage
 * lifecycle is the only caller; it knows nothing of any cloud.
 *
 * Security contract for implementers:
 * - `values` of an {@link IssuedCredential} is the only place secret material may live.
 *   It is handed to the caller once and never stored, logged or put into an error.
 * - A {@link Handle} is stored by the broker (SQLite/PostgreSQL) and written to audit
 *   events, so it must hold no secret: ids, accessors, lease ids, ARNs of roles,
 *   source identities, expiry times, sha256 digests.
 * - Errors thrown from `issue`/`revoke`/`refresh` must be `StagegateError`s with code
 *   `PROVIDER_UNAVAILABLE` (transient: outage, 5xx, throttling, timeout — the reaper
 *   retries) or `PROVIDER_REJECTED` (the cloud said no: 4xx), with a message that
 *   names no account id, ARN or token (reduce cloud SDK errors to their error code).
 */
import type { z } from 'zod';
import type { Logger } from 'pino';

/** How a credential is delivered to the stage process (see DESIGN.md, "Credential kinds"). */
export type CredentialKind = 'aws' | 'gcp-access-token' | 'vault-token' | 'secret';

/**
 * How a credential is taken away at stage exit:
 * - `native`: the backend revokes it for real (Vault revoke-accessor / lease revoke);
 * - `deny-policy`: the backend cannot revoke, an explicit per-stage Deny makes it useless
 *   (AWS STS: Deny on the stage's `aws:SourceIdentity`);
 * - `expiry`: nothing can revoke it; it is no longer refreshed and dies at `effectiveUntil`
 *   (GCP access tokens);
 * - `none`: a static value that cannot be revoked at all (Vault KV read marked `static`).
 */
export type RevocationMethod = 'native' | 'deny-policy' | 'expiry' | 'none';

/** Non-secret JSON that identifies what to revoke. Stored and audited: no secrets. */
export type Handle = { [key: string]: JsonValue };
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** What the provider knows about the stage it issues for. All fields are non-secret. */
export interface StageContext {
  /** Random stage id, `[a-z0-9-]{1,40}`. */
  readonly stageId: string;
  /** Build key derived from the identity token (e.g. `acme/web/123/1`); any characters, any length. */
  readonly build: string;
  /** Stage name from policy; any characters. */
  readonly stage: string;
  /** Policy rule name that allowed the stage. */
  readonly rule: string;
  /** Configured issuer name that verified the identity. */
  readonly issuer: string;
  /** Verified identity-token claims (for session tags / metadata); treat as untrusted strings. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** When the stage ends unless heartbeats extend it. */
  readonly expiresAt: Date;
  /** The latest the stage may ever live (the rule's max TTL). */
  readonly maxExpiresAt: Date;
}

/** One grant of a stage, as written in policy, with its provider-specific params validated. */
export interface GrantSpec<P = Record<string, unknown>> {
  readonly name: string;
  readonly provider: string;
  readonly params: P;
}

export interface IssuedCredential {
  readonly kind: CredentialKind;
  /**
   * SECRET. The credential material, keyed by kind:
   * - `aws`: `accessKeyId`, `secretAccessKey`, `sessionToken`
   * - `gcp-access-token`: `accessToken`
   * - `vault-token`: `token`
   * - `secret`: any named values (e.g. `username`, `password`)
   */
  readonly values: Readonly<Record<string, string>>;
  /** Non-secret delivery facts, e.g. `accountId`, `region`, `serviceAccountEmail`, `projectId`, `vaultAddress`. */
  readonly meta?: Readonly<Record<string, string>>;
  readonly expiresAt: Date;
  /** Non-secret handle stored by the broker and passed back to `revoke`/`refresh`. */
  readonly handle: Handle;
  /** The method `revoke` will use. */
  readonly revocation: RevocationMethod;
  /** If set, the broker calls `refresh` at about this time while the stage is open. */
  readonly refreshAt?: Date;
}

export interface RevokeResult {
  readonly method: RevocationMethod;
  /** When the credential stops working: now for `native`/`deny-policy` (modulo propagation), its natural expiry for `expiry`. */
  readonly effectiveAt: Date;
}

export interface Provider<P = Record<string, unknown>> {
  /** Instance name from config (`providers.<name>`). */
  readonly name: string;
  /** Backend type (`dev`, `aws-sts`, `vault`, `gcp-iam`). */
  readonly type: string;
  /** Credential kinds this provider mints. */
  readonly kinds: readonly CredentialKind[];

  /**
   * Deterministic, non-secret handle computed before anything is minted; the broker
   * commits it to the store first (write-ahead). It must be enough for `revoke(intent)`
   * to make the credential useless if the broker crashes before the issued handle is
   * recorded (AWS: the source identity to deny; Vault: metadata to find the token; GCP:
   * the lifetime backstop).
   */
  prepare(grant: GrantSpec<P>, ctx: StageContext): Handle;

  /** Mint the credential. `intent` is what `prepare` returned. */
  issue(grant: GrantSpec<P>, ctx: StageContext, intent: Handle): Promise<IssuedCredential>;

  /**
   * Make the credential useless. `issued` is undefined when only the intent is known
   * (crash between mint and record, or mint failed half-way). Must be idempotent.
   * Uses only the handles: after a restart the grant may no longer be in policy.
   */
  revoke(intent: Handle, issued: Handle | undefined): Promise<RevokeResult>;

  /** Mint a fresh credential for a credential that uses `expiry` revocation. */
  refresh?(grant: GrantSpec<P>, ctx: StageContext, issued: Handle): Promise<IssuedCredential>;

  /** Periodic housekeeping (e.g. garbage-collect expired deny entries). */
  maintain?(now: Date): Promise<void>;

  /** Readiness: resolve if the backend is reachable/configured, reject otherwise. */
  ready?(): Promise<void>;

  close?(): Promise<void>;
}

export interface ProviderDeps {
  readonly logger: Logger;
  /** Clock, for tests and expiry maths. */
  readonly now: () => Date;
}

/**
 * A provider type: its config and grant schemas (validated at broker start, every
 * mistake reported with its path) and a factory.
 */
export interface ProviderFactory<C = unknown, P = unknown> {
  readonly type: string;
  readonly configSchema: z.ZodType<C>;
  readonly grantSchema: z.ZodType<P>;
  create(name: string, config: C, deps: ProviderDeps): Provider<P>;
}
