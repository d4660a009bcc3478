/**
 * Wire shapes of the Vault HTTP API v1 responses the provider reads, and checks that
 * turn an unexpected body into a coded error (never a TypeError deep in grant logic).
 * Only the fields stagegate uses are typed.
 */
import { StagegateError } from '../../sdk/errors';

/** `auth` block of a login or token-create response. */
export interface VaultAuth {
  readonly client_token: string;
  readonly accessor: string;
  readonly policies: readonly string[] | null;
  readonly token_policies?: readonly string[] | null;
  readonly metadata?: Readonly<Record<string, string>> | null;
  /** Seconds; 0 for a token that never expires. */
  readonly lease_duration: number;
  readonly renewable: boolean;
  readonly orphan?: boolean;
}

/** `data` of `auth/token/lookup-self` and `auth/token/lookup-accessor`. */
export interface VaultTokenLookup {
  readonly accessor: string;
  readonly meta: Readonly<Record<string, string>> | null;
  readonly ttl: number;
  readonly expire_time: string | null;
  readonly policies: readonly string[];
}

/** A secrets-engine read: dynamic secrets carry a lease, KV v2 nests `data.data`. */
export interface VaultSecretResponse {
  readonly lease_id: string;
  readonly lease_duration: number;
  readonly renewable: boolean;
  readonly data: Readonly<Record<string, unknown>> | null;
}

function malformed(what: string): StagegateError {
  return new StagegateError('PROVIDER_UNAVAILABLE', `Vault returned an unexpected ${what} response`, {
    details: { provider: 'vault', operation: what },
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `auth` block of a login/create response, or a coded error. */
export function readAuth(body: unknown, what: string): VaultAuth {
  const auth = isRecord(body) ? body.auth : undefined;
  if (!isRecord(auth) || typeof auth.client_token !== 'string' || !auth.client_token || typeof auth.accessor !== 'string') {
    throw malformed(what);
  }
  return {
    client_token: auth.client_token,
    accessor: auth.accessor,
    policies: Array.isArray(auth.policies) ? auth.policies.map(String) : null,
    metadata: isRecord(auth.metadata) ? (auth.metadata as Record<string, string>) : null,
    lease_duration: typeof auth.lease_duration === 'number' ? auth.lease_duration : 0,
    renewable: auth.renewable === true,
    orphan: auth.orphan === true,
  };
}

/** The `data` of a token lookup, or a coded error. */
export function readTokenLookup(body: unknown, what: string): VaultTokenLookup {
  const data = isRecord(body) ? body.data : undefined;
  if (!isRecord(data) || typeof data.accessor !== 'string') throw malformed(what);
  return {
    accessor: data.accessor,
    meta: isRecord(data.meta) ? (data.meta as Record<string, string>) : null,
    ttl: typeof data.ttl === 'number' ? data.ttl : 0,
    expire_time: typeof data.expire_time === 'string' ? data.expire_time : null,
    policies: Array.isArray(data.policies) ? data.policies.map(String) : [],
  };
}

/** A secret read's envelope, or a coded error. */
export function readSecret(body: unknown, what: string): VaultSecretResponse {
  if (!isRecord(body) || !isRecord(body.data)) throw malformed(what);
  return {
    lease_id: typeof body.lease_id === 'string' ? body.lease_id : '',
    lease_duration: typeof body.lease_duration === 'number' ? body.lease_duration : 0,
    renewable: body.renewable === true,
    data: body.data,
  };
}

/** `data.keys` of a LIST response (empty when the list is empty: Vault answers 404 then). */
export function readListKeys(body: unknown, what: string): string[] {
  const data = isRecord(body) ? body.data : undefined;
  if (!isRecord(data) || !Array.isArray(data.keys)) throw malformed(what);
  return data.keys.map(String);
}
