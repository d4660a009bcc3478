/**
 * The closed set of provenance checks. A denial names exactly one of these per failed
 * requirement, so callers (and dashboards) can branch on it; extend, never rename.
 *
 * - `no-evidence`: no evidence item of the kind the requirement needs was sent.
 * - `malformed`: the item is not a well-formed envelope / bundle / in-toto statement.
 * - `unsupported`: well-formed, but of a kind this broker cannot verify (e.g. a key type).
 * - `signature`: no signature verifies under the configured key(s), or the bundle's
 *   signature does not verify under its certificate / key.
 * - `certificate-chain`: the signing certificate does not chain to the trusted root.
 * - `certificate-expired`: the certificate (or its CA) was not valid at the signing time
 *   proven by the transparency log / timestamp authority.
 * - `tlog-proof`: transparency-log inclusion proof / promise / checkpoint / entry body
 *   does not verify, or there are too few log entries.
 * - `timestamp`: a signed timestamp does not verify, or there are too few timestamps.
 * - `certificate-identity`: the certificate's SAN is not the required identity.
 * - `issuer`: the certificate's OIDC issuer extension is not the required issuer.
 * - `digest-mismatch`: a declared artifact digest is not among the attested subjects.
 * - `predicate-type`: the statement is not SLSA provenance of an accepted version.
 * - `builder`, `build-type`, `source-repo`, `source-ref`, `source-digest`: SLSA fields.
 * - `binding`: a claim-to-provenance binding does not hold.
 * - `claim-missing`: a `{claim}` placeholder names a claim the identity token lacks
 *   (fails closed: a missing claim never matches anything).
 * - `timeout`: verification did not finish within its time bound.
 */
export const PROVENANCE_CHECKS = [
  'no-evidence',
  'malformed',
  'unsupported',
  'signature',
  'certificate-chain',
  'certificate-expired',
  'tlog-proof',
  'timestamp',
  'certificate-identity',
  'issuer',
  'digest-mismatch',
  'predicate-type',
  'builder',
  'build-type',
  'source-repo',
  'source-ref',
  'source-digest',
  'binding',
  'claim-missing',
  'timeout',
] as const;

export type ProvenanceCheck = (typeof PROVENANCE_CHECKS)[number];

/** One check's outcome. `reason` is a fixed sentence: it never quotes evidence content. */
export interface CheckResult {
  readonly check: ProvenanceCheck;
  readonly ok: boolean;
  readonly reason: string;
}

/**
 * A failed check, thrown inside the verifiers and caught by the evaluator, which turns
 * it into a {@link CheckResult}. Never escapes `broker/provenance`.
 */
export class CheckFailure extends Error {
  override readonly name = 'CheckFailure';
  constructor(
    readonly check: ProvenanceCheck,
    readonly reason: string,
  ) {
    super(`${check}: ${reason}`);
  }
}
