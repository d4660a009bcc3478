import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { parseDerEcdsaSignature, verifyPrehashedSignature } from '../../broker/provenance/prehashed-signature';

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

describe('verifyPrehashedSignature', () => {
  it.each(['P-256', 'P-384'])('accepts Node-made ECDSA %s signatures and rejects a changed digest or signature', (namedCurve) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
    for (let i = 0; i < 25; i++) {
      const message = Buffer.from(`artifact ${i} ${namedCurve}`);
      const signature = sign('sha256', message, privateKey);
      expect(verifyPrehashedSignature(publicKey, sha256(message), signature)).toBe('valid');
      const otherDigest = sha256(Buffer.from(`other ${i}`));
      expect(verifyPrehashedSignature(publicKey, otherDigest, signature)).toBe('invalid');
      const flipped = Buffer.from(signature);
      flipped[flipped.length - 1]! ^= 0x01;
      expect(verifyPrehashedSignature(publicKey, sha256(message), flipped)).toBe('invalid');
    }
  });

  it('rejects an ECDSA signature made by another key', () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const message = Buffer.from('x');
    expect(verifyPrehashedSignature(b.publicKey, sha256(message), sign('sha256', message, a.privateKey))).toBe('invalid');
  });

  it('accepts RSA PKCS#1 v1.5 and rejects a changed digest', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const message = Buffer.from('rsa artifact');
    const signature = sign('sha256', message, privateKey);
    expect(verifyPrehashedSignature(publicKey, sha256(message), signature)).toBe('valid');
    expect(verifyPrehashedSignature(publicKey, sha256(Buffer.from('other')), signature)).toBe('invalid');
  });

  it('says unsupported for Ed25519, which signs whole messages', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const message = Buffer.from('x');
    expect(verifyPrehashedSignature(publicKey, sha256(message), sign(null, message, privateKey))).toBe('unsupported');
  });

  it('rejects malformed DER and out-of-range scalars', () => {
    expect(parseDerEcdsaSignature(Buffer.from('300602010102010100', 'hex'))).toBeUndefined(); // trailing byte
    expect(parseDerEcdsaSignature(Buffer.from('3006020181020101', 'hex'))).toBeUndefined(); // negative r
    expect(parseDerEcdsaSignature(Buffer.from('3006020101020101', 'hex'))).toEqual({ r: 1n, s: 1n });
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const zero = Buffer.from('3006020100020101', 'hex');
    expect(verifyPrehashedSignature(publicKey, sha256(Buffer.from('x')), zero)).toBe('invalid');
  });
});
