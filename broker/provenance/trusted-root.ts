import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, type TrustMaterial } from '@sigstore/verify';
import type { KeyObject } from 'node:crypto';
// The Sigstore public-good production root (from the seed @sigstore/tuf ships), so a
// broker verifies GitHub / public Sigstore attestations with no network access. Update
// it when Sigstore rotates keys (see docs/provenance.md).
import publicGoodRoot from './trusted-roots/public-good.json';

/** Name of the built-in trusted root. */
export const PUBLIC_GOOD_TRUSTED_ROOT = 'public-good';

/** Built-in trusted roots by name, as parsed `trusted_root.json` documents. */
export const BUILTIN_TRUSTED_ROOTS: Readonly<Record<string, unknown>> = { [PUBLIC_GOOD_TRUSTED_ROOT]: publicGoodRoot };

/**
 * Parse a `trusted_root.json` document (the Sigstore TrustedRoot protobuf in JSON) into
 * the verifier's trust material. With `publicKey`, bundles signed by a key (not a
 * certificate) are checked against that one key whatever key hint they carry: the hint
 * is unauthenticated, so it must never select the key.
 * @throws TypeError when the document is not a usable trusted root.
 */
export function loadTrustMaterial(document: unknown, publicKey?: KeyObject): TrustMaterial {
  let root: TrustedRoot;
  try {
    root = TrustedRoot.fromJSON(document);
  } catch {
    throw new TypeError('not a Sigstore trusted_root.json document');
  }
  if (root.tlogs.length === 0) throw new TypeError('the trusted root lists no transparency log');
  try {
    return toTrustMaterial(root, (_hint: string) => {
      if (!publicKey) throw new TypeError('no public key is configured for this requirement');
      return { publicKey, validFor: () => true };
    });
  } catch {
    throw new TypeError('the trusted root holds keys or certificates that cannot be parsed');
  }
}
