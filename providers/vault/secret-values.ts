/**
 * Secret data from Vault as the flat string map a `secret` credential carries. Nested
 * values are JSON-encoded rather than dropped, so nothing the secret holds is lost.
 */
import { StagegateError } from '../../sdk/errors';

export function stringifySecretData(data: unknown, operation: string): Record<string, string> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new StagegateError('PROVIDER_UNAVAILABLE', `Vault returned an unexpected ${operation} response`, { details: { provider: 'vault', operation } });
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    if (v === null || v === undefined) continue;
    out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}
