/** The `aws-sts` provider: every export of this folder. */
export {
  awsStsProviderFactory,
  createAwsStsProvider,
  AWS_STS_PROVIDER_TYPE,
  type AwsStsOverrides,
  type AwsStsIntent,
  type AwsStsIssuedHandle,
} from './aws-sts-provider';
export {
  awsStsConfigSchema,
  awsStsGrantSchema,
  DEFAULT_DENY_POLICY_NAME,
  DEFAULT_MAX_SESSION_SECONDS,
  ROLE_INLINE_POLICY_LIMIT,
  type AwsStsConfig,
  type AwsStsConfigInput,
  type AwsStsGrant,
  type AwsStsGrantInput,
} from './aws-sts-config';
export { createAwsWireClient, type AwsWireClient, type AwsWireOptions, type AwsCredentialSource, type AssumedSession } from './aws-wire-client';
export { reduceAwsError, awsErrorCode } from './reduce-aws-error';
export {
  parseDenyList,
  addDeny,
  collectGarbage,
  fitDenyList,
  renderDenyList,
  policySize,
  bucketFor,
  findDeny,
  countDenies,
  mergeDenyLists,
  DENY_SID_PREFIX,
  type DenyList,
} from './deny-list';
export { deriveSourceIdentity, deriveSessionName, deriveSessionTags, sanitizeTagValue, type SessionTag } from './session-identity';
