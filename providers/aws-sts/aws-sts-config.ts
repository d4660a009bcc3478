/**
 * Config and grant schemas of the `aws-sts` provider. Validated once at broker start
 * (every bad field reported with its path by zod); the provider trusts them afterwards.
 *
 * The broker's own AWS credentials are deliberately NOT configurable here: they come
 * from the SDK default chain (IRSA / EKS Pod Identity / instance role), never from a
 * file that could end up in a chart or a repository.
 */
import { z } from 'zod';
import { MAX_SESSION_TAGS, SESSION_TAG_KEY_PATTERN, STAGEGATE_TAG_COUNT, STAGEGATE_TAG_PREFIX } from './session-identity';

/** Default name of the dedicated inline policy that holds the per-stage denies. */
export const DEFAULT_DENY_POLICY_NAME = 'stagegate-revocations';
/** Default role max session, seconds (IAM's default `MaxSessionDuration`). */
export const DEFAULT_MAX_SESSION_SECONDS = 3600;
/** STS floor for `DurationSeconds`, seconds. */
export const MIN_SESSION_SECONDS = 900;
/** STS ceiling for `DurationSeconds` (a role's `MaxSessionDuration` can be at most 12 h), seconds. */
export const MAX_SESSION_SECONDS = 43_200;
/** IAM's aggregate limit of a role's inline policies, characters (whitespace excluded by IAM). */
export const ROLE_INLINE_POLICY_LIMIT = 10_240;
/** STS limit of an inline session policy, characters. */
export const MAX_SESSION_POLICY_CHARS = 2048;
/** STS limit of managed session policies per AssumeRole. */
export const MAX_POLICY_ARNS = 10;

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
const POLICY_ARN = /^arn:aws[a-z-]*:iam::(?:\d{12}|aws):policy\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,128}$/;
const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d$/;

const roleArn = z.string().regex(ROLE_ARN, 'must be an IAM role ARN (arn:aws:iam::123456789012:role/NAME)');

const tagKey = z
  .string()
  .min(1)
  .max(128)
  .regex(SESSION_TAG_KEY_PATTERN, 'must match the session tag key charset [\\p{L}\\p{Z}\\p{N}_.:/=+@-]')
  .refine((k) => !k.toLowerCase().startsWith('aws:'), 'the aws: prefix is reserved by AWS')
  .refine(
    (k) => !k.toLowerCase().startsWith(STAGEGATE_TAG_PREFIX),
    `the ${STAGEGATE_TAG_PREFIX} prefix is reserved for the tags stagegate sets itself (they must not be spoofable)`,
  );

export const awsStsConfigSchema = z
  .object({
    type: z.literal('aws-sts'),
    /** AWS region of the STS endpoint (required by the SDK even with an endpoint override). */
    region: z.string().regex(REGION, 'must be an AWS region such as us-east-1'),
    /** Endpoint overrides: VPC interface endpoints in production, local fakes in tests. */
    endpoint: z
      .object({ sts: z.string().url().optional(), iam: z.string().url().optional() })
      .strict()
      .optional(),
    /** Role assumed for grants that name none. */
    roleArn: roleArn.optional(),
    /**
     * Roles this provider may assume. When set, a grant's `roleArn` must be one of them,
     * and `maintain()` garbage-collects their deny lists even after a restart.
     */
    roleArns: z.array(roleArn).max(100).optional(),
    /** Name of the ONE inline policy on each role that holds stagegate's denies. */
    denyPolicyName: z.string().regex(POLICY_NAME).default(DEFAULT_DENY_POLICY_NAME),
    /** Identity-token claim name → session tag key. Values are sanitised and truncated. */
    claimTags: z.record(z.string().min(1).max(256), tagKey).default({}),
    /** The roles' `MaxSessionDuration`, seconds (900–43200, default 3600). */
    maxSessionSeconds: z.number().int().min(MIN_SESSION_SECONDS).max(MAX_SESSION_SECONDS).default(DEFAULT_MAX_SESSION_SECONDS),
    /** Clock skew tolerated between the broker and AWS when deciding a credential is dead, seconds (default 300). */
    clockSkewSeconds: z.number().int().min(0).max(3600).default(300),
    /** Time IAM takes to apply a policy change everywhere, seconds (default 60; AWS documents "eventually"). */
    propagationSeconds: z.number().int().min(0).max(3600).default(60),
    /** Width of a deny-list expiry bucket (one policy statement per bucket), seconds (default 900). */
    gcBucketSeconds: z.number().int().min(60).max(MAX_SESSION_SECONDS).default(900),
    /**
     * Characters the deny policy may use (default 10,240, IAM's aggregate limit). Lower it
     * when the roles carry other inline policies: IAM counts them all together.
     */
    denyPolicyMaxChars: z.number().int().min(512).max(ROLE_INLINE_POLICY_LIMIT).default(ROLE_INLINE_POLICY_LIMIT),
    /** SDK attempts per call, retrying only throttling/5xx/timeouts (default 3). */
    maxAttempts: z.number().int().min(1).max(10).default(3),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (Object.keys(c.claimTags).length + STAGEGATE_TAG_COUNT > MAX_SESSION_TAGS) {
      ctx.addIssue({
        code: 'custom',
        path: ['claimTags'],
        message: `at most ${MAX_SESSION_TAGS - STAGEGATE_TAG_COUNT} claim tags (STS allows ${MAX_SESSION_TAGS} session tags, stagegate sets ${STAGEGATE_TAG_COUNT})`,
      });
    }
    const keys = Object.values(c.claimTags).map((k) => k.toLowerCase());
    if (new Set(keys).size !== keys.length) {
      ctx.addIssue({ code: 'custom', path: ['claimTags'], message: 'tag keys must be unique (STS compares them case-insensitively)' });
    }
  });

/** A session policy given inline: a JSON object or its JSON text; stored compact. */
const sessionPolicy = z
  .union([z.string(), z.record(z.string(), z.unknown())])
  .transform((v, ctx) => {
    let parsed: unknown;
    try {
      parsed = typeof v === 'string' ? JSON.parse(v) : v;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be valid JSON' });
      return z.NEVER;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object (an IAM policy document)' });
      return z.NEVER;
    }
    const compact = JSON.stringify(parsed);
    if (compact.length > MAX_SESSION_POLICY_CHARS) {
      ctx.addIssue({ code: 'custom', message: `is ${compact.length} characters compacted; STS allows ${MAX_SESSION_POLICY_CHARS}` });
      return z.NEVER;
    }
    return compact;
  });

export const awsStsGrantSchema = z
  .object({
    /** Role to assume; defaults to the provider's `roleArn`. */
    roleArn: roleArn.optional(),
    /** Inline session policy narrowing the role for this stage (≤ 2048 chars compacted). */
    sessionPolicy: sessionPolicy.optional(),
    /** Managed session policies (≤ 10). */
    policyArns: z.array(z.string().regex(POLICY_ARN, 'must be an IAM policy ARN')).max(MAX_POLICY_ARNS).default([]),
    /** Extra static session tags (key → value). */
    tags: z
      .record(tagKey, z.string().max(256).regex(/^[\p{L}\p{Z}\p{N}_.:/=+@-]*$/u, 'must match the session tag value charset'))
      .default({}),
  })
  .strict();

export type AwsStsConfig = z.output<typeof awsStsConfigSchema>;
export type AwsStsConfigInput = z.input<typeof awsStsConfigSchema>;
export type AwsStsGrant = z.output<typeof awsStsGrantSchema>;
export type AwsStsGrantInput = z.input<typeof awsStsGrantSchema>;
