import { StagegateError } from '../../sdk/errors';
import type { EvidenceItem } from './evidence-schema';
import { isRecord } from './in-toto-statement';

/**
 * Turn the text of an `--evidence FILE` into request evidence items, so users pass the
 * files their tools write as they are:
 * - a Sigstore bundle (`mediaType: application/vnd.dev.sigstore.bundle…`, e.g. from
 *   actions/attest-build-provenance, `cosign … --bundle`, `gh attestation download`);
 * - a DSSE envelope (`payloadType`, `payload`, `signatures`);
 * - an already-typed item (`{ "type": "dsse" | "sigstore", … }`);
 * - JSON Lines of any of these (`gh attestation download` writes one bundle per line).
 *
 * The items are not verified here; the broker does that.
 * @throws StagegateError `INVALID_REQUEST` naming the line, never quoting content.
 */
export function toEvidenceItems(text: string): EvidenceItem[] {
  const trimmed = text.trim();
  let documents: unknown[];
  try {
    documents = [JSON.parse(trimmed)];
  } catch {
    documents = trimmed
      .split(/\r?\n/)
      .map((line, i) => ({ line: line.trim(), i }))
      .filter(({ line }) => line !== '')
      .map(({ line, i }) => {
        try {
          return JSON.parse(line) as unknown;
        } catch {
          throw new StagegateError('INVALID_REQUEST', `evidence line ${i + 1} is not JSON`, { details: { line: i + 1 } });
        }
      });
  }
  return documents.map((doc, i) => {
    if (isRecord(doc)) {
      if (doc.type === 'dsse' || doc.type === 'sigstore') return doc as unknown as EvidenceItem;
      if (typeof doc.mediaType === 'string' && doc.mediaType.startsWith('application/vnd.dev.sigstore.bundle')) {
        return { type: 'sigstore', bundle: doc };
      }
      if (typeof doc.payloadType === 'string' && 'signatures' in doc) {
        return { type: 'dsse', envelope: doc } as unknown as EvidenceItem;
      }
    }
    throw new StagegateError('INVALID_REQUEST', `evidence document ${i + 1} is neither a Sigstore bundle nor a DSSE envelope`, {
      details: { document: i + 1 },
    });
  });
}
