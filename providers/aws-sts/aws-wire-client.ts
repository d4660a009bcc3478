/**
 * The thin wire layer of the `aws-sts` provider: the real STS and IAM clients, with every
 * failure reduced to a coded `StagegateError` (see reduce-aws-error.ts). No policy, no
 * deny-list logic here. Retries are the SDK's standard ones (throttling, 5xx, timeouts;
 * never 4xx), bounded by `maxAttempts`.
 */
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient, type STSClientConfig } from '@aws-sdk/client-sts';
import { DeleteRolePolicyCommand, GetRolePolicyCommand, IAMClient, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { reduceAwsError, awsErrorCode } from './reduce-aws-error';
import type { SessionTag } from './session-identity';

/** The broker's own AWS credentials: an identity or an async provider of one (the SDK's type). */
export type AwsCredentialSource = NonNullable<STSClientConfig['credentials']>;

export interface AwsWireOptions {
  readonly region: string;
  readonly endpoint?: { readonly sts?: string; readonly iam?: string };
  /** Default: the SDK default chain (env, web identity/IRSA, EKS Pod Identity, IMDS). */
  readonly credentials?: AwsCredentialSource;
  /** SDK attempts per call (standard retry: throttling/5xx/timeouts only). */
  readonly maxAttempts: number;
}

export interface AssumeRoleInput {
  readonly roleArn: string;
  readonly sessionName: string;
  readonly sourceIdentity: string;
  readonly durationSeconds: number;
  readonly policy?: string;
  readonly policyArns: readonly string[];
  readonly tags: readonly SessionTag[];
  readonly transitiveTagKeys: readonly string[];
}

/** SECRET: the session credentials returned by AssumeRole. Never log or store this object. */
export interface AssumedSession {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiresAt: Date;
  /** `AROA…:SESSION`, the value of `aws:userid` for this session (not secret). */
  readonly assumedRoleId?: string;
}

export interface AwsWireClient {
  assumeRole(input: AssumeRoleInput): Promise<AssumedSession>;
  /** Cheap authenticated call with the broker's own credentials. */
  getCallerIdentity(): Promise<void>;
  /** The decoded policy document, or `undefined` when the role has no policy of that name. */
  getRolePolicy(roleName: string, policyName: string): Promise<string | undefined>;
  putRolePolicy(roleName: string, policyName: string, document: string): Promise<void>;
  /** Idempotent: a missing policy is not an error. */
  deleteRolePolicy(roleName: string, policyName: string): Promise<void>;
  close(): void;
}

/** Create the STS + IAM wire client. */
export function createAwsWireClient(options: AwsWireOptions): AwsWireClient {
  const common = {
    region: options.region,
    maxAttempts: options.maxAttempts,
    ...(options.credentials ? { credentials: options.credentials } : {}),
  };
  const sts = new STSClient({ ...common, ...(options.endpoint?.sts ? { endpoint: options.endpoint.sts } : {}) });
  const iam = new IAMClient({ ...common, ...(options.endpoint?.iam ? { endpoint: options.endpoint.iam } : {}) });

  return {
    async assumeRole(input) {
      let out;
      try {
        out = await sts.send(
          new AssumeRoleCommand({
            RoleArn: input.roleArn,
            RoleSessionName: input.sessionName,
            SourceIdentity: input.sourceIdentity,
            DurationSeconds: input.durationSeconds,
            ...(input.policy !== undefined ? { Policy: input.policy } : {}),
            ...(input.policyArns.length > 0 ? { PolicyArns: input.policyArns.map((arn) => ({ arn })) } : {}),
            ...(input.tags.length > 0 ? { Tags: input.tags.map((t) => ({ Key: t.Key, Value: t.Value })) } : {}),
            ...(input.transitiveTagKeys.length > 0 ? { TransitiveTagKeys: [...input.transitiveTagKeys] } : {}),
          }),
        );
      } catch (err) {
        throw reduceAwsError(err, 'sts:AssumeRole');
      }
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
        // A 200 without credentials is a broken endpoint, not a refusal: retry later.
        throw reduceAwsError({ name: 'IncompleteResponse', $metadata: { httpStatusCode: 502 } }, 'sts:AssumeRole');
      }
      return {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        sessionToken: c.SessionToken,
        expiresAt: c.Expiration,
        ...(out.AssumedRoleUser?.AssumedRoleId ? { assumedRoleId: out.AssumedRoleUser.AssumedRoleId } : {}),
      };
    },

    async getCallerIdentity() {
      try {
        await sts.send(new GetCallerIdentityCommand({}));
      } catch (err) {
        throw reduceAwsError(err, 'sts:GetCallerIdentity');
      }
    },

    async getRolePolicy(roleName, policyName) {
      try {
        const out = await iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
        // IAM returns the document URL-encoded (RFC 3986) and the SDK does not decode it.
        return out.PolicyDocument === undefined ? undefined : decodeURIComponent(out.PolicyDocument);
      } catch (err) {
        if (awsErrorCode(err) === 'NoSuchEntityException' || awsErrorCode(err) === 'NoSuchEntity') return undefined;
        throw reduceAwsError(err, 'iam:GetRolePolicy');
      }
    },

    async putRolePolicy(roleName, policyName, document) {
      try {
        await iam.send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: policyName, PolicyDocument: document }));
      } catch (err) {
        throw reduceAwsError(err, 'iam:PutRolePolicy');
      }
    },

    async deleteRolePolicy(roleName, policyName) {
      try {
        await iam.send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
      } catch (err) {
        if (awsErrorCode(err) === 'NoSuchEntityException' || awsErrorCode(err) === 'NoSuchEntity') return;
        throw reduceAwsError(err, 'iam:DeleteRolePolicy');
      }
    },

    close() {
      sts.destroy();
      iam.destroy();
    },
  };
}
