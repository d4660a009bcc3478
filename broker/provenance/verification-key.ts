import { createHash, createPublicKey, constants, verify, type KeyObject } from 'node:crypto';

/**
 * A configured public key that may sign evidence, checked once at config load.
 * Accepted: ECDSA P-256 (SHA-256) and P-384 (SHA-384), Ed25519, RSA ≥ 2048 bits
 * (PKCS#1 v1.5 or PSS, SHA-256) — the key types DSSE/in-toto signers produce.
 */
export interface VerificationKey {
  readonly key: KeyObject;
  /** `sha256:` + hex SHA-256 of the SPKI DER: a public, stable key id for reports. */
  readonly fingerprint: string;
  readonly kind: 'ecdsa-p256' | 'ecdsa-p384' | 'ed25519' | 'rsa';
}

/** Minimum RSA modulus, bits: smaller keys are factorable by well-funded attackers. */
export const MIN_RSA_BITS = 2048;

/**
 * Parse a PEM public key.
 * @throws TypeError (caller reports it with the config path) for anything else.
 */
export function loadVerificationKey(pem: string): VerificationKey {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new TypeError('not a PEM public key');
  }
  const fingerprint = `sha256:${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex')}`;
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return { key, fingerprint, kind: 'ecdsa-p256' };
      if (details.namedCurve === 'secp384r1') return { key, fingerprint, kind: 'ecdsa-p384' };
      throw new TypeError('unsupported EC curve (use P-256 or P-384)');
    case 'ed25519':
      return { key, fingerprint, kind: 'ed25519' };
    case 'rsa':
      if ((details.modulusLength ?? 0) < MIN_RSA_BITS) throw new TypeError(`RSA keys must have at least ${MIN_RSA_BITS} bits`);
      return { key, fingerprint, kind: 'rsa' };
    default:
      throw new TypeError('unsupported key type (use ECDSA P-256/P-384, Ed25519 or RSA)');
  }
}

/**
 * Verify `signature` over `data` with a configured key, using the one algorithm its key
 * type implies (never an algorithm named by the evidence). ECDSA signatures are accepted
 * in DER (what DSSE signers emit) or IEEE P1363 (r‖s) form; RSA in PKCS#1 v1.5 or PSS.
 */
export function verifyWithKey(vk: VerificationKey, data: Buffer, signature: Buffer): boolean {
  try {
    switch (vk.kind) {
      case 'ed25519':
        return verify(null, data, vk.key, signature);
      case 'ecdsa-p256':
      case 'ecdsa-p384': {
        const hash = vk.kind === 'ecdsa-p256' ? 'sha256' : 'sha384';
        const p1363Length = vk.kind === 'ecdsa-p256' ? 64 : 96;
        if (signature.length === p1363Length && verify(hash, data, { key: vk.key, dsaEncoding: 'ieee-p1363' }, signature)) return true;
        return verify(hash, data, { key: vk.key, dsaEncoding: 'der' }, signature);
      }
      case 'rsa':
        return (
          verify('sha256', data, { key: vk.key, padding: constants.RSA_PKCS1_PADDING }, signature) ||
          verify('sha256', data, { key: vk.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature)
        );
    }
  } catch {
    // A malformed signature (bad DER) makes OpenSSL throw: that is just "does not verify".
    return false;
  }
}
