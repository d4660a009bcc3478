/**
 * The `aws-sts` provider: AssumeRole per stage, revoked by a per-stage Deny on the
 * stage's `aws:SourceIdentity` in one dedicated inline policy of the role.
 *
 * Flow: `prepare` derives a deterministic intent (role, SourceIdentity, session name and
 * the latest moment any credential minted under it can expire) that the broker commits
 * before anything exists; `issue` calls AssumeRole with exactly that SourceIdentity;
 * `revoke` needs only the intent, so a broker that crashed between mint and record still
 * kills the credential. Denies are garbage-collected once the denied credentials have
 * expired by themselves (see deny-list.ts).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { StagegateError } from '../../sdk/errors';
import type {
  GrantSpec,
  Handle,
  IssuedCredential,
  Provider,
  ProviderDeps,
  ProviderFactory,
  RevokeResult,
  StageContext,
} from '../provider';
import { awsStsConfigSchema, awsStsGrantSchema, MIN_SESSION_SECONDS, type AwsStsConfig, type AwsStsGrant } from './aws-sts-config';
import { createAwsWireClient, type AwsCredentialSource, type AwsWireClient } from './aws-wire-client';
import {
  addDeny,
  bucketFor,
  collectGarbage,
  DenyListFormatError,
  fitDenyList,
  mergeDenyLists,
  parseDenyList,
  policySize,
  renderDenyList,
  countDenies,
  EMPTY_DENY_LIST,
  type DenyList,
} from './deny-list';
import { createKeyedBatchQueue } from './keyed-batch-queue';
import {
  deriveSessionName,
  deriveSessionTags,
  deriveSourceIdentity,
  MAX_SESSION_TAGS,
  STAGEGATE_TAG_KEYS,
} from './session-identity';

export const AWS_STS_PROVIDER_TYPE = 'aws-sts';

/** Test and embedding seams. Production passes none of these. */
export interface AwsStsOverrides {
  /** The broker's own AWS credentials. Default: the SDK default chain (IRSA / EKS Pod Identity). */
  readonly credentials?: AwsCredentialSource;
  /** A ready-made wire client (e.g. one shared by several providers). */
  readonly wire?: AwsWireClient;
}

/** The write-ahead intent (stored; no secrets). */
const intentSchema = z.object({
  v: z.literal(1),
  roleArn: z.string(),
  sourceIdentity: z.string(),
  sessionName: z.string(),
  region: z.string(),
  /** ISO time after which no credential minted under this intent can be valid. */
  notAfter: z.string(),
});
export type AwsStsIntent = z.infer<typeof intentSchema>;

/** The issued handle (stored; no secrets: the access key id only as a sha256 prefix). */
const issuedSchema = z.object({
  roleArn: z.string(),
  sourceIdentity: z.string(),
  sessionName: z.string(),
  expiresAt: z.string(),
  accessKeyIdSha256: z.string().optional(),
});
export type AwsStsIssuedHandle = z.infer<typeof issuedSchema>;

type DenyItem = { readonly kind: 'deny'; readonly sourceIdentity: string; readonly bucket: number } | { readonly kind: 'gc' };

const roleNameOf = (roleArn: string): string => roleArn.slice(roleArn.lastIndexOf('/') + 1);
const epochSeconds = (d: Date): number => Math.floor(d.getTime() / 1000);

function parseHandle<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new StagegateError('INTERNAL', `aws-sts: stored ${what} handle is malformed`, { details: { what } });
  return r.data;
}

/**
 * Create an `aws-sts` provider from VALIDATED config (`awsStsConfigSchema.parse`).
 *
 * @param name instance name (`providers.<name>`)
 * @param overrides test seams: inject `credentials` for the broker's identity instead of
 *   the SDK default chain.
 */
export function createAwsStsProvider(
  name: string,
  config: AwsStsConfig,
  deps: ProviderDeps,
  overrides: AwsStsOverrides = {},
): Provider<AwsStsGrant> {
  const log = deps.logger.child({ provider: name, providerType: AWS_STS_PROVIDER_TYPE });
  const wire =
    overrides.wire ??
    createAwsWireClient({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      ...(overrides.credentials ? { credentials: overrides.credentials } : {}),
      maxAttempts: config.maxAttempts,
    });
  /** Roles whose deny lists `maintain` sweeps: configured ones plus any used since start. */
  const roles = new Set<string>([...(config.roleArn ? [config.roleArn] : []), ...(config.roleArns ?? [])]);
  /**
   * The last deny list this process wrote per role. IAM is eventually consistent: a
   * GetRolePolicy right after a PutRolePolicy may return the older document, and writing
   * back a stale read would silently drop a deny. Every write therefore unions this in.
   */
  const lastWritten = new Map<string, DenyList>();
  const marginSeconds = config.clockSkewSeconds + config.propagationSeconds;

  const resolveRole = (grant: AwsStsGrant): string => {
    const roleArn = grant.roleArn ?? config.roleArn;
    if (!roleArn) throw new StagegateError('CONFIG_INVALID', `aws-sts provider '${name}': grant names no roleArn and the provider has no default`);
    if (config.roleArns && !config.roleArns.includes(roleArn)) {
      throw new StagegateError('CONFIG_INVALID', `aws-sts provider '${name}': grant roleArn is not in the provider's roleArns`, {
        details: { role: roleNameOf(roleArn) },
      });
    }
    return roleArn;
  };

  /** One read-modify-write of a role's deny policy for a batch of denies (and GC). */
  const writeDenies = async (roleArn: string, items: DenyItem[]): Promise<Array<Date | Error>> => {
    const roleName = roleNameOf(roleArn);
    const before = await wire.getRolePolicy(roleName, config.denyPolicyName);
    let list: DenyList;
    try {
      list = parseDenyList(before);
    } catch (err) {
      if (err instanceof DenyListFormatError) {
        // Never overwrite a document we cannot read: it may hold denies we would lose.
        throw new StagegateError('PROVIDER_REJECTED', 'aws deny policy on the role is not a policy stagegate can rewrite', {
          details: { role: roleName, policyName: config.denyPolicyName },
        });
      }
      throw err;
    }
    const now = deps.now();
    list = collectGarbage(mergeDenyLists(list, lastWritten.get(roleArn) ?? EMPTY_DENY_LIST), epochSeconds(now));
    const outcomes: Array<Date | Error> = [];
    const effectiveAt = new Date(now.getTime() + config.propagationSeconds * 1000);
    for (const item of items) {
      if (item.kind === 'gc') {
        outcomes.push(now);
        continue;
      }
      const fitted = fitDenyList(addDeny(list, item.sourceIdentity, item.bucket), config.denyPolicyMaxChars);
      if (!fitted) {
        // Dropping a live deny to make room would silently un-revoke a credential: fail
        // instead (transient: room frees up as older denies expire; the reaper retries).
        outcomes.push(
          new StagegateError('PROVIDER_UNAVAILABLE', 'aws deny list of the role is full until older denies expire', {
            details: { reason: 'deny-list-full', role: roleName, denies: countDenies(list), maxChars: config.denyPolicyMaxChars },
          }),
        );
        continue;
      }
      list = fitted;
      outcomes.push(effectiveAt);
    }
    const after = renderDenyList(list);
    if (after !== before) {
      if (after === undefined) await wire.deleteRolePolicy(roleName, config.denyPolicyName);
      else await wire.putRolePolicy(roleName, config.denyPolicyName, after);
      log.info({ role: roleName, denies: countDenies(list), policyChars: policySize(after) }, 'aws deny policy written');
    }
    lastWritten.set(roleArn, list);
    return outcomes;
  };
  const queue = createKeyedBatchQueue<DenyItem, Date>(writeDenies);

  return {
    name,
    type: AWS_STS_PROVIDER_TYPE,
    kinds: ['aws'],

    prepare(grant: GrantSpec<AwsStsGrant>, ctx: StageContext): Handle {
      const roleArn = resolveRole(grant.params);
      const intent: AwsStsIntent = {
        v: 1,
        roleArn,
        sourceIdentity: deriveSourceIdentity(ctx.stageId),
        sessionName: deriveSessionName(ctx.stage, ctx.stageId),
        region: config.region,
        // `issue` never asks for a duration that ends later than this, so a revoke that
        // knows only the intent knows how long its deny must live. Derived from the stage
        // alone (deterministic): the stage's expiry plus STS's minimum session, which
        // leaves room for the 900 s floor even when the stage TTL is shorter.
        notAfter: new Date(ctx.expiresAt.getTime() + MIN_SESSION_SECONDS * 1000).toISOString(),
      };
      return intent;
    },

    async issue(grant: GrantSpec<AwsStsGrant>, ctx: StageContext, intentHandle: Handle): Promise<IssuedCredential> {
      const intent = parseHandle(intentSchema, intentHandle, 'intent');
      const tags = deriveSessionTags(ctx, config.claimTags, grant.params.tags);
      if (tags.length > MAX_SESSION_TAGS) {
        throw new StagegateError('CONFIG_INVALID', `aws-sts provider '${name}': ${tags.length} session tags, STS allows ${MAX_SESSION_TAGS}`, {
          details: { grant: grant.name, tags: tags.length },
        });
      }
      const now = deps.now();
      const ttl = Math.floor((ctx.expiresAt.getTime() - now.getTime()) / 1000);
      const untilNotAfter = Math.floor((Date.parse(intent.notAfter) - now.getTime()) / 1000);
      const duration = Math.min(Math.max(ttl, MIN_SESSION_SECONDS), config.maxSessionSeconds, untilNotAfter);
      if (duration < MIN_SESSION_SECONDS) {
        // The stage expired before we got to mint: nothing to issue.
        throw new StagegateError('STAGE_CLOSED', `aws-sts provider '${name}': the stage expired before its credentials were minted`, {
          details: { grant: grant.name },
        });
      }
      const session = await wire.assumeRole({
        roleArn: intent.roleArn,
        sessionName: intent.sessionName,
        sourceIdentity: intent.sourceIdentity,
        durationSeconds: duration,
        ...(grant.params.sessionPolicy !== undefined ? { policy: grant.params.sessionPolicy } : {}),
        policyArns: grant.params.policyArns,
        tags,
        // stagegate's own tags follow the session through role chaining, so CloudTrail
        // entries of chained roles still lead back to the stage.
        transitiveTagKeys: tags.filter((t) => (STAGEGATE_TAG_KEYS as readonly string[]).includes(t.Key)).map((t) => t.Key),
      });
      roles.add(intent.roleArn);
      const handle: AwsStsIssuedHandle = {
        roleArn: intent.roleArn,
        sourceIdentity: intent.sourceIdentity,
        sessionName: intent.sessionName,
        expiresAt: session.expiresAt.toISOString(),
        accessKeyIdSha256: createHash('sha256').update(session.accessKeyId).digest('hex').slice(0, 16),
      };
      log.info(
        { grant: grant.name, stageId: ctx.stageId, role: roleNameOf(intent.roleArn), sourceIdentity: intent.sourceIdentity, durationSeconds: duration },
        'aws session issued',
      );
      return {
        kind: 'aws',
        values: { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken },
        meta: { region: config.region },
        expiresAt: session.expiresAt,
        handle,
        revocation: 'deny-policy',
      };
    },

    async revoke(intentHandle: Handle, issuedHandle: Handle | undefined): Promise<RevokeResult> {
      const intent = parseHandle(intentSchema, intentHandle, 'intent');
      const issued = issuedHandle === undefined ? undefined : parseHandle(issuedSchema, issuedHandle, 'issued');
      // Without the issued handle (crash between mint and record) the intent's bound is
      // the latest any credential minted under it can live.
      const expiresAt = new Date(issued?.expiresAt ?? intent.notAfter);
      const gcAfter = epochSeconds(expiresAt) + marginSeconds;
      const now = deps.now();
      if (gcAfter <= epochSeconds(now)) {
        // Expired on its own (with margins): a deny would be garbage on arrival.
        return { method: 'deny-policy', effectiveAt: expiresAt };
      }
      roles.add(intent.roleArn);
      const effectiveAt = await queue.submit(intent.roleArn, {
        kind: 'deny',
        sourceIdentity: intent.sourceIdentity,
        bucket: bucketFor(gcAfter, config.gcBucketSeconds),
      });
      log.info({ role: roleNameOf(intent.roleArn), sourceIdentity: intent.sourceIdentity, crashRecovery: issued === undefined }, 'aws session denied');
      return { method: 'deny-policy', effectiveAt };
    },

    async maintain(): Promise<void> {
      const results = await Promise.allSettled([...roles].map((roleArn) => queue.submit(roleArn, { kind: 'gc' })));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length > 0) {
        const first = failed[0]!.reason;
        const code = first instanceof StagegateError ? first.code : 'PROVIDER_UNAVAILABLE';
        throw new StagegateError(code, `aws-sts provider '${name}': deny-list maintenance failed for ${failed.length} role(s)`, {
          details: { failedRoles: failed.length, ...(first instanceof StagegateError ? { first: first.details } : {}) },
        });
      }
    },

    async ready(): Promise<void> {
      await wire.getCallerIdentity();
    },

    async close(): Promise<void> {
      await queue.idle();
      if (!overrides.wire) wire.close();
    },
  };
}

/** The `aws-sts` provider type, for the broker's provider registry. */
export const awsStsProviderFactory: ProviderFactory<AwsStsConfig, AwsStsGrant> = {
  type: AWS_STS_PROVIDER_TYPE,
  configSchema: awsStsConfigSchema,
  grantSchema: awsStsGrantSchema,
  create: (name, config, deps) => createAwsStsProvider(name, config, deps),
};
