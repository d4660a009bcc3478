import { CheckFailure } from './provenance-check';
import { DEFAULT_EVIDENCE_LIMITS, measureJsonDepth } from './evidence-limits';

/** The DSSE payload type of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** Statement versions accepted: v1, and v0.1 (still used by SLSA v0.2 producers). */
const STATEMENT_TYPES = new Set(['https://in-toto.io/Statement/v1', 'https://in-toto.io/Statement/v0.1']);

/** One attested subject; `sha256` is lower-case hex when the subject has one. */
export interface StatementSubject {
  readonly name?: string;
  readonly sha256?: string;
}

/** An in-toto statement, read only after its signature verified. */
export interface InTotoStatement {
  readonly subjects: readonly StatementSubject[];
  readonly predicateType: string;
  readonly predicate: Readonly<Record<string, unknown>>;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

/**
 * Parse a verified DSSE payload as an in-toto statement
 * (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md).
 * @throws CheckFailure `malformed` (the reason never quotes the payload).
 */
export function parseInTotoStatement(payloadType: string, payload: Buffer): InTotoStatement {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new CheckFailure('malformed', `the envelope's payloadType is not ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new CheckFailure('malformed', 'the envelope payload is not JSON');
  }
  // The payload was base64 inside the request, so the request's depth limit did not see it.
  if (measureJsonDepth(parsed, DEFAULT_EVIDENCE_LIMITS.maxDepth) > DEFAULT_EVIDENCE_LIMITS.maxDepth) {
    throw new CheckFailure('malformed', 'the statement is nested too deeply');
  }
  if (!isRecord(parsed) || typeof parsed._type !== 'string' || !STATEMENT_TYPES.has(parsed._type)) {
    throw new CheckFailure('malformed', 'the payload is not an in-toto Statement v1 or v0.1');
  }
  const { subject, predicateType, predicate } = parsed;
  if (!Array.isArray(subject) || subject.length === 0 || typeof predicateType !== 'string') {
    throw new CheckFailure('malformed', 'the statement lacks subject or predicateType');
  }
  const subjects = subject.map((s: unknown): StatementSubject => {
    if (!isRecord(s) || !isRecord(s.digest)) throw new CheckFailure('malformed', 'a statement subject lacks a digest');
    const sha256 = typeof s.digest.sha256 === 'string' && HEX64.test(s.digest.sha256) ? s.digest.sha256.toLowerCase() : undefined;
    return { ...(typeof s.name === 'string' ? { name: s.name } : {}), ...(sha256 ? { sha256 } : {}) };
  });
  return { subjects, predicateType, predicate: isRecord(predicate) ? predicate : {} };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
