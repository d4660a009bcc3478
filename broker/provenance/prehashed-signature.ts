import { constants, publicDecrypt, type KeyObject } from 'node:crypto';

/**
 * Verify a signature given only the signed message's **digest**.
 *
 * Why: a Sigstore message-signature bundle signs the artifact itself, but a stage
 * declares its artifacts by SHA-256 digest only — the broker never receives the bytes.
 * ECDSA and RSA PKCS#1 v1.5 sign the message's digest, so verifying against the
 * digest is exactly as strong as verifying against the artifact (given SHA-256's
 * collision resistance). Node's crypto offers no pre-hashed verify, so:
 * - RSA PKCS#1 v1.5: RSA public operation (`publicDecrypt`), then compare the
 *   DigestInfo structure byte for byte;
 * - ECDSA P-256 / P-384: the textbook verification equation (SEC 1 §4.1.4) with BigInt.
 *   Every input is public, so constant-time arithmetic is not needed here.
 * Ed25519 (PureEdDSA) signs the whole message and RSA-PSS needs the encoded message
 * hash: neither is accepted (returns `unsupported`).
 */
export type PrehashedVerdict = 'valid' | 'invalid' | 'unsupported';

/** SHA-256 DigestInfo prefix (RFC 8017 §9.2 note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

interface Curve {
  readonly p: bigint;
  readonly n: bigint;
  readonly b: bigint;
  readonly gx: bigint;
  readonly gy: bigint;
}

// NIST curves from FIPS 186-4 D.1.2 (a = -3 for both).
const P256: Curve = {
  p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
  n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
};
const P384: Curve = {
  p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
  n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
  gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
};

/**
 * Verify `signature` (ECDSA: DER; RSA: PKCS#1 v1.5) over a message whose SHA-256
 * digest is `digest` (32 bytes).
 */
export function verifyPrehashedSignature(key: KeyObject, digest: Buffer, signature: Buffer): PrehashedVerdict {
  if (digest.length !== 32) return 'unsupported';
  if (key.asymmetricKeyType === 'rsa') return verifyRsaPkcs1(key, digest, signature);
  if (key.asymmetricKeyType === 'ec') {
    const curveName = key.asymmetricKeyDetails?.namedCurve;
    const curve = curveName === 'prime256v1' ? P256 : curveName === 'secp384r1' ? P384 : undefined;
    if (!curve) return 'unsupported';
    return verifyEcdsa(curve, key, digest, signature) ? 'valid' : 'invalid';
  }
  return 'unsupported';
}

function verifyRsaPkcs1(key: KeyObject, digest: Buffer, signature: Buffer): PrehashedVerdict {
  let encoded: Buffer;
  try {
    encoded = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return 'invalid';
  }
  const expected = Buffer.concat([SHA256_DIGEST_INFO, digest]);
  return encoded.length === expected.length && encoded.equals(expected) ? 'valid' : 'invalid';
}

type Point = { readonly x: bigint; readonly y: bigint } | null;

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

function invert(a: bigint, m: bigint): bigint {
  // Extended Euclid; m is prime and a ≠ 0 mod m wherever this is called.
  let [oldR, r] = [mod(a, m), m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return mod(oldS, m);
}

function addPoints(c: Curve, P: Point, Q: Point): Point {
  if (P === null) return Q;
  if (Q === null) return P;
  let slope: bigint;
  if (P.x === Q.x) {
    if (mod(P.y + Q.y, c.p) === 0n) return null; // P = -Q (includes y = 0 doubling)
    slope = mod((3n * P.x * P.x - 3n) * invert(2n * P.y, c.p), c.p); // a = -3
  } else {
    slope = mod((Q.y - P.y) * invert(Q.x - P.x, c.p), c.p);
  }
  const x = mod(slope * slope - P.x - Q.x, c.p);
  return { x, y: mod(slope * (P.x - x) - P.y, c.p) };
}

function isOnCurve(c: Curve, P: { x: bigint; y: bigint }): boolean {
  if (P.x < 0n || P.x >= c.p || P.y < 0n || P.y >= c.p) return false;
  return mod(P.y * P.y - (P.x * P.x * P.x - 3n * P.x + c.b), c.p) === 0n;
}

/** u1·G + u2·Q by Shamir's trick (one shared double-and-add pass). */
function doubleScalarMultiply(c: Curve, u1: bigint, G: Point, u2: bigint, Q: Point): Point {
  const GQ = addPoints(c, G, Q);
  let R: Point = null;
  const bits = Math.max(u1.toString(2).length, u2.toString(2).length);
  for (let i = bits - 1; i >= 0; i--) {
    R = addPoints(c, R, R);
    const b1 = (u1 >> BigInt(i)) & 1n;
    const b2 = (u2 >> BigInt(i)) & 1n;
    if (b1 && b2) R = addPoints(c, R, GQ);
    else if (b1) R = addPoints(c, R, G);
    else if (b2) R = addPoints(c, R, Q);
  }
  return R;
}

function toBigInt(bytes: Buffer): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${bytes.toString('hex')}`);
}

/** Strict DER `SEQUENCE { INTEGER r, INTEGER s }`; undefined when malformed. */
export function parseDerEcdsaSignature(der: Buffer): { r: bigint; s: bigint } | undefined {
  let pos = 0;
  const readLength = (): number | undefined => {
    const first = der[pos++];
    if (first === undefined) return undefined;
    if (first < 0x80) return first;
    if (first === 0x81) {
      const len = der[pos++];
      return len !== undefined && len >= 0x80 ? len : undefined;
    }
    return undefined; // no ECDSA signature needs more than one length byte
  };
  const readInteger = (): bigint | undefined => {
    if (der[pos++] !== 0x02) return undefined;
    const len = readLength();
    if (len === undefined || len === 0 || pos + len > der.length) return undefined;
    const bytes = der.subarray(pos, pos + len);
    pos += len;
    if (bytes[0]! & 0x80) return undefined; // negative
    if (bytes.length > 1 && bytes[0] === 0 && !(bytes[1]! & 0x80)) return undefined; // non-minimal
    return toBigInt(bytes);
  };
  if (der[pos++] !== 0x30) return undefined;
  const seqLen = readLength();
  if (seqLen === undefined || pos + seqLen !== der.length) return undefined;
  const r = readInteger();
  const s = readInteger();
  if (r === undefined || s === undefined || pos !== der.length) return undefined;
  return { r, s };
}

function verifyEcdsa(c: Curve, key: KeyObject, digest: Buffer, signature: Buffer): boolean {
  const sig = parseDerEcdsaSignature(signature);
  if (!sig) return false;
  const { r, s } = sig;
  if (r < 1n || r >= c.n || s < 1n || s >= c.n) return false;
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return false;
  const Q = { x: toBigInt(Buffer.from(jwk.x, 'base64url')), y: toBigInt(Buffer.from(jwk.y, 'base64url')) };
  if (!isOnCurve(c, Q)) return false;
  // e = leftmost bitlen(n) bits of the digest; SHA-256 is never longer than n here.
  const e = toBigInt(digest);
  const w = invert(s, c.n);
  const R = doubleScalarMultiply(c, mod(e * w, c.n), { x: c.gx, y: c.gy }, mod(r * w, c.n), Q);
  return R !== null && mod(R.x, c.n) === r;
}

