/** Public surface of the `gcp-iam` provider. */
export {
  gcpIamProviderFactory,
  createGcpIamProvider,
  GCP_IAM_PROVIDER_TYPE,
  type GcpIamProviderOverrides,
} from './gcp-iam-provider';
export {
  gcpIamConfigSchema,
  gcpIamGrantSchema,
  CLOUD_PLATFORM_SCOPE,
  DEFAULT_LIFETIME_SECONDS,
  DEFAULT_REFRESH_BEFORE_SECONDS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_MAX_ATTEMPTS,
  MAX_TOKEN_LIFETIME_SECONDS,
  MIN_LIFETIME_SECONDS,
  type GcpIamConfig,
  type GcpIamConfigInput,
  type GcpIamGrant,
  type GcpIamGrantInput,
} from './gcp-iam-config';
export { createIamCredentialsClient, type IamCredentialsCaller, type IamCredentialsEndpoint } from './iam-credentials-client';
