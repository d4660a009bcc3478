/**
 * The provider types the broker knows, by `type`. Adding a backend = adding its
 * factory here; nothing else in the broker names a cloud.
 */
import type { ProviderFactory } from './provider';
import { awsStsProviderFactory } from './aws-sts/aws-sts-provider';
import { devProviderFactory } from './dev/dev-provider';
import { gcpIamProviderFactory } from './gcp-iam/gcp-iam-provider';
import { vaultProviderFactory } from './vault/vault-provider';

export const PROVIDER_FACTORIES: ReadonlyMap<string, ProviderFactory<any, any>> = new Map(
  ([devProviderFactory, awsStsProviderFactory, vaultProviderFactory, gcpIamProviderFactory] as ProviderFactory<any, any>[]).map((f) => [f.type, f]),
);
