/**
 * The `gcp-iam` provider: short-lived OAuth access tokens for a Google service account,
 * minted with IAM Credentials `generateAccessToken` by the broker's own identity.
 *
 * Revocation is `expiry`: Google cannot revoke these tokens ("service account tokens are
 * not revocable"). What stagegate does instead:
 * - mint the shortest useful lifetime (default 10 min), never past the stage's max expiry;
 * - refresh only while the stage is open (the broker calls `refresh` at `refreshAt`);
 * - at exit stop refreshing and report exactly when the last token dies.
 * Disabling the service account would kill its tokens sooner, but it kills every
 * holder's tokens (other builds, other systems using that account) and needs a far
 * stronger role for the broker; see docs/providers/gcp-iam.md.
 */
import type { AuthClient } from 'google-auth-library';
import { StagegateError } from '../../sdk/errors';
import type {
  CredentialKind,
  GrantSpec,
  Handle,
  IssuedCredential,
  Provider,
  ProviderDeps,
  ProviderFactory,
  RevokeResult,
  StageContext,
} from '../provider';
import {
  gcpIamConfigSchema,
  gcpIamGrantSchema,
  projectIdFromServiceAccountEmail,
  type GcpIamConfig,
  type GcpIamGrant,
} from './gcp-iam-config';
import {
  buildIntentHandle,
  buildIssuedHandle,
  handleCount,
  handleTime,
  tokenDigest,
} from './gcp-iam-handle';
import { createIamCredentialsClient, type IamCredentialsCaller, type IamCredentialsEndpoint } from './iam-credentials-client';

/** The provider type name used in config (`providers.<name>.type`). */
export const GCP_IAM_PROVIDER_TYPE = 'gcp-iam';

const KINDS: readonly CredentialKind[] = ['gcp-access-token'];

/** Test and embedding hooks; production uses none of them. */
export interface GcpIamProviderOverrides {
  /** The broker's own credentials (default: Application Default Credentials). */
  readonly authClient?: AuthClient;
  /** Endpoint to call instead of `config.endpoint` / Google's public endpoint. */
  readonly endpoint?: IamCredentialsEndpoint;
  /** Backoff base before the first retry, milliseconds (default 200). */
  readonly retryBaseDelayMs?: number;
}

/**
 * Create a `gcp-iam` provider instance. `config` must already be parsed by
 * {@link gcpIamConfigSchema} (defaults applied).
 *
 * @example
 * const config = gcpIamConfigSchema.parse({ type: 'gcp-iam', projectId: 'my-project' });
 * const provider = createGcpIamProvider('gcp', config, { logger, now: () => new Date() });
 */
export function createGcpIamProvider(
  name: string,
  config: GcpIamConfig,
  deps: ProviderDeps,
  overrides: GcpIamProviderOverrides = {},
): Provider<GcpIamGrant> {
  const caller = createIamCredentialsClient({
    endpoint: overrides.endpoint ?? config.endpoint,
    authClient: overrides.authClient,
    requestTimeoutMs: config.requestTimeoutMs,
    maxAttempts: config.maxAttempts,
    retryBaseDelayMs: overrides.retryBaseDelayMs,
    logger: deps.logger,
  });
  return new GcpIamProvider(name, config, deps, caller);
}

class GcpIamProvider implements Provider<GcpIamGrant> {
  readonly type = GCP_IAM_PROVIDER_TYPE;
  readonly kinds = KINDS;

  constructor(
    readonly name: string,
    private readonly config: GcpIamConfig,
    private readonly deps: ProviderDeps,
    private readonly caller: IamCredentialsCaller,
  ) {}

  prepare(grant: GrantSpec<GcpIamGrant>, ctx: StageContext): Handle {
    // Write-ahead backstop: the first mint asks for a lifetime ending no later than
    // `notAfter`, so if the broker dies before recording the token, revoke(intent)
    // still knows the latest moment that token can live.
    return buildIntentHandle({
      serviceAccountEmail: grant.params.serviceAccount,
      notAfter: this.boundFor(grant, ctx).toISOString(),
      stageMaxExpiresAt: ctx.maxExpiresAt.toISOString(),
    });
  }

  async issue(grant: GrantSpec<GcpIamGrant>, ctx: StageContext, intent: Handle): Promise<IssuedCredential> {
    const notAfter = handleTime(intent, 'notAfter');
    if (notAfter === undefined || intent.serviceAccountEmail !== grant.params.serviceAccount) {
      // A caller bug (an intent that prepare() did not make for this grant), not bad input.
      throw new TypeError('gcp-iam issue(): intent handle was not prepared for this grant');
    }
    return this.mint(grant, ctx, notAfter, 1);
  }

  async refresh(grant: GrantSpec<GcpIamGrant>, ctx: StageContext, issued: Handle): Promise<IssuedCredential> {
    if (issued.serviceAccountEmail !== grant.params.serviceAccount) {
      throw new TypeError('gcp-iam refresh(): issued handle belongs to another service account');
    }
    return this.mint(grant, ctx, this.boundFor(grant, ctx), (handleCount(issued, 'mints') ?? 1) + 1);
  }

  async revoke(intent: Handle, issued: Handle | undefined): Promise<RevokeResult> {
    // Nothing to call: Google cannot revoke an access token. The credential stops being
    // refreshed (the broker stops calling refresh once the stage is closed) and dies at
    // the expiry of the last token minted. Pure function of the handles: idempotent,
    // and works after a restart even if the grant is gone from policy.
    const effectiveAt = issued
      ? // The issued handle records the latest token's expiry as Google reported it. If
        // it is unreadable, fall back to the stage's absolute bound (refreshes may have
        // minted beyond the intent's backstop).
        (handleTime(issued, 'expiresAt') ?? handleTime(issued, 'stageMaxExpiresAt') ?? handleTime(intent, 'stageMaxExpiresAt'))
      : // Crash between mint and record: only the first mint can have happened, and
        // prepare() bounded its lifetime by `notAfter`.
        (handleTime(intent, 'notAfter') ?? handleTime(intent, 'stageMaxExpiresAt'));
    if (effectiveAt === undefined) {
      throw new StagegateError('PROVIDER_REJECTED', 'gcp-iam revoke: the stored handle holds no expiry', {
        details: { provider: this.name, reason: 'handle-invalid' },
      });
    }
    return { method: 'expiry', effectiveAt };
  }

  async ready(): Promise<void> {
    await this.caller.checkOwnCredentials();
  }

  async close(): Promise<void> {
    await this.caller.close();
  }

  /** Latest expiry a token minted now may have: the lifetime, clamped to the stage's max expiry. */
  private boundFor(grant: GrantSpec<GcpIamGrant>, ctx: StageContext): Date {
    const lifetimeMs = (grant.params.lifetimeSeconds ?? this.config.lifetimeSeconds) * 1000;
    return new Date(Math.min(this.deps.now().getTime() + lifetimeMs, ctx.maxExpiresAt.getTime()));
  }

  private async mint(grant: GrantSpec<GcpIamGrant>, ctx: StageContext, notAfter: Date, mints: number): Promise<IssuedCredential> {
    const p = grant.params;
    const { accessToken, expiresAt, attempts } = await this.caller.generateAccessToken({
      serviceAccountEmail: p.serviceAccount,
      scopes: p.scopes,
      delegates: p.delegates,
      lifetimeSeconds: () => {
        // Whole seconds, rounded DOWN, recomputed per attempt: the token must not outlive
        // `notAfter` (the backstop / the stage's max expiry) even after retries.
        const seconds = Math.floor((notAfter.getTime() - this.deps.now().getTime()) / 1000);
        if (seconds < 1) {
          throw new StagegateError('PROVIDER_REJECTED', 'gcp-iam: no time left before the stage expires; no token minted', {
            details: { provider: this.name, grant: grant.name, reason: 'stage-max-expiry-reached' },
          });
        }
        return seconds;
      },
    });
    const now = this.deps.now();
    const projectId = p.projectId ?? this.config.projectId ?? projectIdFromServiceAccountEmail(p.serviceAccount);
    const tokenSha256 = tokenDigest(accessToken);
    this.deps.logger.info(
      {
        provider: this.name,
        grant: grant.name,
        stageId: ctx.stageId,
        serviceAccountEmail: p.serviceAccount,
        expiresAt: expiresAt.toISOString(),
        tokenSha256,
        mints,
        attempts,
      },
      mints === 1 ? 'GCP access token minted' : 'GCP access token refreshed',
    );
    return {
      kind: 'gcp-access-token',
      values: { accessToken },
      meta: { serviceAccountEmail: p.serviceAccount, ...(projectId ? { projectId } : {}) },
      expiresAt,
      handle: buildIssuedHandle({
        serviceAccountEmail: p.serviceAccount,
        scopes: p.scopes,
        expiresAt: expiresAt.toISOString(),
        issuedAt: now.toISOString(),
        mints,
        tokenSha256,
        stageMaxExpiresAt: ctx.maxExpiresAt.toISOString(),
      }),
      revocation: 'expiry',
      refreshAt: this.refreshAtFor(now, expiresAt, ctx),
    };
  }

  /**
   * When the broker should mint the next token: `refreshBeforeSeconds` before expiry,
   * but no earlier than a quarter into the token's life (so a short, clamped token is
   * not refreshed at once in a loop). None when the token already lives until the
   * stage's max expiry: a refresh could not extend it.
   */
  private refreshAtFor(now: Date, expiresAt: Date, ctx: StageContext): Date | undefined {
    if (expiresAt.getTime() >= ctx.maxExpiresAt.getTime() - 1000) return undefined;
    const life = Math.max(0, expiresAt.getTime() - now.getTime());
    const margin = Math.min(this.config.refreshBeforeSeconds * 1000, life * 0.75);
    return new Date(expiresAt.getTime() - margin);
  }
}

/** The `gcp-iam` provider type, for the broker's provider registry. */
export const gcpIamProviderFactory: ProviderFactory<GcpIamConfig, GcpIamGrant> = {
  type: GCP_IAM_PROVIDER_TYPE,
  configSchema: gcpIamConfigSchema,
  grantSchema: gcpIamGrantSchema,
  create: (name, config, deps) => createGcpIamProvider(name, config, deps),
};
