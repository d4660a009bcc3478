import { CheckFailure } from './provenance-check';
import type { DsseEnvelopeJson } from './evidence-schema';
import { verifyWithKey, type VerificationKey } from './verification-key';

/**
 * DSSE v1 Pre-Authentication Encoding
 * (https://github.com/secure-systems-lab/dsse/blob/master/protocol.md):
 * `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, LEN = decimal byte length.
 * Signing the PAE (not the bare payload) binds the payload type, so a signature over
 * one kind of document cannot be replayed as another.
 */
export function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

/** A DSSE envelope whose signature verified under one of the configured keys. */
export interface VerifiedEnvelope {
  readonly payloadType: string;
  readonly payload: Buffer;
  /** Fingerprint of the configured key that verified. */
  readonly keyFingerprint: string;
}

/**
 * Verify a DSSE envelope against configured keys. The signatures' `keyid` hints are
 * ignored: they are unauthenticated, and trying every (signature, key) pair is cheap
 * with the signature count capped by the schema.
 * @throws CheckFailure `signature` when no signature verifies under any key.
 */
export function verifyDsseEnvelope(envelope: DsseEnvelopeJson, keys: readonly VerificationKey[]): VerifiedEnvelope {
  const payload = Buffer.from(envelope.payload, 'base64');
  const pae = preAuthEncoding(envelope.payloadType, payload);
  for (const { sig } of envelope.signatures) {
    const signature = Buffer.from(sig, 'base64');
    for (const key of keys) {
      if (verifyWithKey(key, pae, signature)) {
        return { payloadType: envelope.payloadType, payload, keyFingerprint: key.fingerprint };
      }
    }
  }
  throw new CheckFailure('signature', 'no envelope signature verifies under a configured key');
}
