import { StagegateError } from '../../sdk/errors';
import { isRecord } from './in-toto-statement';

/**
 * Evidence as tools write it, turned into typed request items, so users pass the files
 * their tools produce unchanged:
 * - a Sigstore bundle (`mediaType: application/vnd.dev.sigstore.bundle…`, e.g. from
 *   actions/attest-build-provenance, `cosign … --bundle`, `gh attestation download`)
 *   → `{ type: "sigstore", bundle }`;
 * - a DSSE envelope (`payloadType`, `signatures`, e.g. a line of slsa-github-generator's
 *   `.intoto.jsonl`) → `{ type: "dsse", envelope }`;
 * - an already-typed item (`{ "type": "dsse" | "sigstore", … }`) stays as it is.
 * Anything else is returned unchanged (and is then ignored or refused by the schema).
 */
export function toEvidenceItem(document: unknown): unknown {
  if (!isRecord(document) || document.type !== undefined) return document;
  if (typeof document.mediaType === 'string' && document.mediaType.startsWith('application/vnd.dev.sigstore.bundle')) {
    return { type: 'sigstore', bundle: document };
  }
  if (typeof document.payloadType === 'string' && 'signatures' in document) return { type: 'dsse', envelope: document };
  return document;
}

/**
 * Read the text of an `--evidence FILE`: one JSON document, or JSON Lines (`gh
 * attestation download` and in-toto `.jsonl` files hold one document per line), each
 * mapped by {@link toEvidenceItem}. Not verified here; the broker does that.
 * @throws StagegateError `INVALID_REQUEST` naming the line or document, never quoting content.
 */
export function toEvidenceItems(text: string): unknown[] {
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
    const item = toEvidenceItem(doc);
    if (isRecord(item) && (item.type === 'dsse' || item.type === 'sigstore')) return item;
    throw new StagegateError('INVALID_REQUEST', `evidence document ${i + 1} is neither a Sigstore bundle nor a DSSE envelope`, {
      details: { document: i + 1 },
    });
  });
}
