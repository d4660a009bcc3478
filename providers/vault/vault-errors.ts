/**
 * Translation of node-vault failures into stagegate's coded errors.
 *
 * Why so strict: node-vault rejects with `ApiResponseError` (Vault's `errors[0]` as
 * message, the whole response body attached) or with axios errors, whose enumerable
 * `config` holds the request headers (`X-Vault-Token`) and body (a `secret_id`, a JWT).
 * Loggers serialise enumerable properties and `cause` chains, so the original error is
 * never attached: the message names only the operation, the HTTP status and a class
 * from a fixed vocabulary, never Vault's free text, a path's secret or a token.
 */
import { StagegateError } from '../../sdk/errors';

/** The fixed vocabulary a Vault error message is reduced to. */
export type VaultErrorClass =
  | 'permission denied'
  | 'sealed'
  | 'invalid accessor'
  | 'invalid credentials'
  | 'policy not allowed'
  | 'unknown lease'
  | 'unknown role'
  | 'rate limited'
  | 'not found'
  | 'bad request'
  | 'server error'
  | 'other';

/** A Vault answer reduced to what may be shown: status and class. */
export interface VaultFailure {
  readonly status: number | null;
  readonly errorClass: VaultErrorClass;
  /** Network error code such as `ECONNREFUSED` (only `E[A-Z_]+` codes are kept). */
  readonly networkCode: string | null;
}

const CLASSES: ReadonlyArray<[RegExp, VaultErrorClass]> = [
  [/permission denied/i, 'permission denied'],
  [/sealed/i, 'sealed'],
  [/invalid accessor/i, 'invalid accessor'],
  [/invalid role or secret id|error validating token|invalid jwt|missing (role_id|secret_id|role)/i, 'invalid credentials'],
  [/subset of|cannot assign policy|root or sudo privileges required/i, 'policy not allowed'],
  [/lease not found|invalid lease/i, 'unknown lease'],
  [/unknown role|role .* (not found|could not be found)|invalid role name/i, 'unknown role'],
  [/rate limit|quota exceeded/i, 'rate limited'],
];

function classify(status: number, first: unknown): VaultErrorClass {
  if (typeof first === 'string') for (const [re, cls] of CLASSES) if (re.test(first)) return cls;
  if (status === 404) return 'not found';
  if (status === 429) return 'rate limited';
  if (status === 400) return 'bad request';
  if (status >= 500) return 'server error';
  return 'other';
}

/** Reduce anything node-vault (or axios under it) threw to a {@link VaultFailure}. */
export function describeVaultFailure(err: unknown): VaultFailure {
  const e = err as { response?: { statusCode?: unknown; body?: unknown }; code?: unknown } | null;
  const status = typeof e?.response?.statusCode === 'number' ? e.response.statusCode : null;
  if (status !== null) {
    const body = e!.response!.body as { errors?: unknown } | undefined;
    const first = Array.isArray(body?.errors) ? body.errors[0] : undefined;
    return { status, errorClass: classify(status, first), networkCode: null };
  }
  const code = typeof e?.code === 'string' && /^E[A-Z_]{2,40}$/.test(e.code) ? e.code : null;
  return { status: null, errorClass: 'other', networkCode: code };
}

/** 408, 429, 5xx and network failures are transient: the reaper retries them. */
export function isTransient(f: VaultFailure): boolean {
  if (f.status === null) return true;
  return f.status === 408 || f.status === 429 || f.status >= 500;
}

/**
 * Could the request have taken effect? Only a refused connection, a 429 (rate limited
 * before handling) or a sealed/standby 503 certainly did not. Non-idempotent calls
 * (token create, dynamic secret read) are retried only then, so a retry never mints a
 * second credential behind the broker's back.
 */
export function certainlyNotApplied(f: VaultFailure): boolean {
  if (f.status === null) return f.networkCode === 'ECONNREFUSED' || f.networkCode === 'ENOTFOUND' || f.networkCode === 'EAI_AGAIN';
  return f.status === 429 || f.status === 503;
}

/** The coded, secret-free error for a failed Vault operation. */
export function toVaultError(operation: string, f: VaultFailure): StagegateError {
  const code = isTransient(f) ? 'PROVIDER_UNAVAILABLE' : 'PROVIDER_REJECTED';
  const what = f.status === null ? `network error${f.networkCode ? ` (${f.networkCode})` : ''}` : `HTTP ${f.status} (${f.errorClass})`;
  return new StagegateError(code, `Vault ${operation} failed: ${what}`, {
    details: { provider: 'vault', operation, status: f.status, vaultError: f.errorClass, ...(f.networkCode ? { networkCode: f.networkCode } : {}) },
  });
}
