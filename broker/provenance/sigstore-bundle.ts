import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { crypto as sigstoreCrypto, type X509Certificate } from '@sigstore/core';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import { PolicyError, VerificationError, Verifier, toSignedEntity, type SignedEntity, type TrustMaterial } from '@sigstore/verify';
import { CheckFailure, type ProvenanceCheck } from './provenance-check';
import { verifyPrehashedSignature } from './prehashed-signature';

/** How a `sigstore:` requirement trusts signers: Fulcio certificates, or one configured key. */
export interface SigstoreTrust {
  readonly trustMaterial: TrustMaterial;
  readonly verifier: Verifier;
  readonly signedBy: 'certificate' | 'key';
  /** Fingerprint of the configured key (key mode). */
  readonly keyFingerprint?: string;
}

/** Build the verifier once per requirement at config load. */
export function createSigstoreTrust(trustMaterial: TrustMaterial, signedBy: 'certificate' | 'key', keyFingerprint?: string): SigstoreTrust {
  // Defaults of @sigstore/verify: at least one tlog entry, one SCT (certificates), one
  // verified timestamp (tlog integrated time or RFC 3161). Certificates are checked at
  // that *proven signing time*, not at "now": Fulcio certificates live 10 minutes.
  return { trustMaterial, verifier: new Verifier(trustMaterial), signedBy, ...(keyFingerprint ? { keyFingerprint } : {}) };
}

/** A bundle that verified cryptographically (identity policy not yet applied). */
export interface VerifiedBundle {
  /** Certificate SAN and OIDC issuer (certificate mode). */
  readonly identity?: string;
  readonly issuer?: string;
  readonly keyFingerprint?: string;
  readonly content:
    | { readonly kind: 'dsse'; readonly payloadType: string; readonly payload: Buffer }
    | { readonly kind: 'message'; readonly sha256: string };
}

/**
 * Verify a Sigstore bundle (v0.1–v0.3) fully offline: transparency-log inclusion
 * (proof + checkpoint, or signed entry timestamp), signed timestamps, certificate chain
 * to the trusted root's Fulcio CA at the proven signing time, SCTs, and the signature.
 *
 * Message-signature bundles are verified against their message digest (see
 * prehashed-signature.ts): the caller then compares that digest with the artifact the
 * stage declares.
 * @throws CheckFailure naming the failed check.
 */
export function verifySigstoreBundle(json: unknown, trust: SigstoreTrust): VerifiedBundle {
  let bundle: Bundle;
  let entity: SignedEntity;
  try {
    bundle = bundleFromJSON(json);
    entity = toSignedEntity(bundle);
  } catch {
    throw new CheckFailure('malformed', 'not a valid Sigstore bundle');
  }
  const hasKey = bundle.verificationMaterial.content.$case === 'publicKey';
  if (trust.signedBy === 'key' && !hasKey) {
    throw new CheckFailure('signature', 'the bundle is signed with a certificate; the requirement names a public key');
  }
  if (trust.signedBy === 'certificate' && hasKey) {
    throw new CheckFailure('signature', 'the bundle is signed with a bare key; the requirement names a certificate identity');
  }

  let content: VerifiedBundle['content'];
  if (bundle.content.$case === 'messageSignature') {
    const { messageDigest, signature } = bundle.content.messageSignature;
    if (!messageDigest || messageDigest.algorithm !== HashAlgorithm.SHA2_256) {
      throw new CheckFailure('unsupported', 'only SHA-256 message digests are supported');
    }
    const digest = Buffer.from(messageDigest.digest);
    content = { kind: 'message', sha256: digest.toString('hex') };
    entity = { ...entity, signature: prehashedSignatureContent(digest, Buffer.from(signature)) };
  } else {
    const env = bundle.content.dsseEnvelope;
    content = { kind: 'dsse', payloadType: env.payloadType, payload: Buffer.from(env.payload) };
  }

  let signer: ReturnType<Verifier['verify']>;
  try {
    signer = trust.verifier.verify(entity);
  } catch (err) {
    throw new CheckFailure(classifyFailure(err, entity, trust.trustMaterial), reasonFor(err));
  }
  if (trust.signedBy === 'key') return { keyFingerprint: trust.keyFingerprint, content };
  return {
    identity: signer.identity?.subjectAlternativeName,
    issuer: signer.identity?.extensions?.issuer,
    content,
  };
}

/**
 * Signature content that verifies against the message digest. Every other method
 * behaves as @sigstore/verify's own MessageSignatureContent (digest and signature are
 * still compared with the transparency-log entry).
 */
function prehashedSignatureContent(digest: Buffer, signature: Buffer): SignedEntity['signature'] {
  return {
    signature,
    compareSignature: (other) => sigstoreCrypto.bufferEqual(other, signature),
    compareDigest: (other) => sigstoreCrypto.bufferEqual(other, digest),
    verifySignature: (key) => {
      const verdict = verifyPrehashedSignature(key, digest, signature);
      if (verdict === 'unsupported') throw new CheckFailure('unsupported', 'message signatures by this key type need the artifact bytes; use a DSSE attestation');
      return verdict === 'valid';
    },
  };
}

// @sigstore/verify reports one code for every certificate problem. Whether the
// certificate (or its CA) was simply outside its validity window at the signing time is
// worth telling apart ("re-sign" vs "wrong CA"), so that case is recomputed here from
// the bundle's own (unverified) times — only to name the failure, never to pass one.
function classifyFailure(err: unknown, entity: SignedEntity, trust: TrustMaterial): ProvenanceCheck {
  if (err instanceof CheckFailure) return err.check;
  if (err instanceof PolicyError) return 'certificate-identity';
  if (!(err instanceof VerificationError)) return 'malformed';
  switch (err.code) {
    case 'SIGNATURE_ERROR':
    case 'PUBLIC_KEY_ERROR':
      return 'signature';
    case 'TIMESTAMP_ERROR':
      return 'timestamp';
    case 'NOT_IMPLEMENTED_ERROR':
      return 'unsupported';
    case 'CERTIFICATE_ERROR':
      return certificateExpired(entity, trust) ? 'certificate-expired' : 'certificate-chain';
    default:
      return 'tlog-proof'; // TLOG_ERROR, TLOG_INCLUSION_*, TLOG_MISSING_*, TLOG_BODY_ERROR
  }
}

function reasonFor(err: unknown): string {
  if (err instanceof CheckFailure) return err.reason;
  if (err instanceof VerificationError) {
    // Fixed sentences per code: the library's messages can quote bundle content.
    const reasons: Record<string, string> = {
      SIGNATURE_ERROR: 'the bundle signature does not verify',
      PUBLIC_KEY_ERROR: 'the signing key is not trusted',
      TIMESTAMP_ERROR: 'the bundle lacks a verifiable timestamp',
      NOT_IMPLEMENTED_ERROR: 'the bundle uses a feature this verifier does not support',
      CERTIFICATE_ERROR: 'the signing certificate does not verify against the trusted root at the signing time',
    };
    return reasons[err.code] ?? 'the transparency-log entry does not verify';
  }
  return 'the bundle could not be verified';
}

function certificateExpired(entity: SignedEntity, trust: TrustMaterial): boolean {
  if (entity.key.$case !== 'certificate') return false;
  const leaf: X509Certificate = entity.key.certificate;
  const times: Date[] = [];
  for (const t of entity.timestamps) {
    if (t.$case === 'transparency-log') times.push(new Date(Number(t.tlogEntry.integratedTime) * 1000));
    else times.push(t.timestamp.signingTime);
  }
  return times.some(
    (t) => !leaf.validForDate(t) || !trust.certificateAuthorities.some((ca) => ca.validFor.start <= t && t <= ca.validFor.end),
  );
}
