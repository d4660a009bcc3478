/** The `vault` provider: every public export of providers/vault. */
export { vaultProviderFactory, createVaultProvider, type VaultProviderDeps } from './vault-provider';
export {
  vaultConfigSchema,
  vaultGrantSchema,
  vaultAuthSchema,
  DEFAULT_KUBERNETES_JWT_FILE,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_RETRY_ATTEMPTS,
  DEFAULT_RETRY_BASE_DELAY_MS,
  type VaultConfig,
  type VaultAuthConfig,
  type VaultGrant,
  type VaultTokenGrant,
  type VaultDynamicGrant,
  type VaultKvGrant,
} from './vault-config';
export { MARKER_META_KEY } from './stage-token';
