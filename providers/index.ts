export * from './provider';
export { PROVIDER_FACTORIES } from './registry';
export { devProviderFactory, DevProvider } from './dev/dev-provider';
export { awsStsProviderFactory, createAwsStsProvider } from './aws-sts';
export { vaultProviderFactory, createVaultProvider } from './vault';
export { gcpIamProviderFactory, createGcpIamProvider } from './gcp-iam';
