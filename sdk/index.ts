export * from './errors';
export {
  createStagegateClient,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  type ClosedStage,
  type Credential,
  type CredentialKind,
  type HeartbeatResult,
  type IdentityTokenInput,
  type OpenStageRequest,
  type OpenedStage,
  type RevocationMethod,
  type RevokedCredential,
  type StageState,
  type StagegateClient,
  type StagegateClientOptions,
} from './client';
export { withStage, type StageSession, type WithStageOptions } from './with-stage';
export { startStageHeartbeat, heartbeatIntervalMs, type StageHeartbeat, type StageHeartbeatOptions } from './heartbeat';
export {
  createIdentityTokenSource,
  identityTokenSourcesFromEnv,
  resolveIdentityToken,
  DEFAULT_AUDIENCE,
  IDENTITY_SOURCE_NAMES,
  type IdentityTokenSources,
} from './identity-token';
export {
  startLocalCredentialEndpoints,
  createStageGate,
  buildStageEnv,
  createStageFiles,
  type LocalEndpoints,
  type LocalEndpointsOptions,
  type RefusalEvent,
  type StageGate,
  type DeliveryMode,
} from './local-endpoints';
