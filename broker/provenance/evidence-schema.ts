import { z } from 'zod';

/** Most evidence items one request may carry. */
export const MAX_EVIDENCE_ITEMS = 16;
/** Most artifacts one stage may declare. */
export const MAX_ARTIFACTS = 64;
/** Most signatures read from one DSSE envelope (each is tried against each key). */
export const MAX_DSSE_SIGNATURES = 8;

// Standard or URL-safe base64, padding optional (DSSE allows either).
const base64 = z.string().min(1).regex(/^[A-Za-z0-9+/_-]+={0,2}$/, { message: 'must be base64' });

/** A DSSE envelope as JSON (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md). */
export const dsseEnvelopeSchema = z.object({
  payloadType: z.string().min(1).max(256),
  payload: base64,
  signatures: z
    .array(z.object({ keyid: z.string().max(512).optional(), sig: base64 }))
    .min(1)
    .max(MAX_DSSE_SIGNATURES),
});

/**
 * One evidence item of the open request's `evidence: [...]`:
 * - `{ type: "dsse", envelope: {payloadType, payload, signatures} }` — an in-toto
 *   statement in a DSSE envelope, checked against `dsse:` requirements;
 * - `{ type: "sigstore", bundle: {...} }` — a Sigstore bundle v0.1–v0.3 (message
 *   signature or DSSE), checked against `sigstore:` requirements. The bundle's own
 *   structure is validated by `@sigstore/bundle` during verification.
 */
export const evidenceItemSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('dsse'), envelope: dsseEnvelopeSchema }).strict(),
  z.object({ type: z.literal('sigstore'), bundle: z.record(z.string(), z.unknown()) }).strict(),
]);

/** The request's `evidence` array (at most {@link MAX_EVIDENCE_ITEMS} items). */
export const evidenceListSchema = z.array(evidenceItemSchema).max(MAX_EVIDENCE_ITEMS);

/** An artifact the stage declares it acts on (deploys, publishes), by SHA-256 digest. */
export const artifactSchema = z
  .object({
    name: z.string().min(1).max(256).optional(),
    digest: z.object({ sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, { message: 'must be 64 hex digits' }) }),
  })
  .strict();

/** The request's `artifacts` array (at most {@link MAX_ARTIFACTS}). */
export const artifactListSchema = z.array(artifactSchema).max(MAX_ARTIFACTS);

/**
 * The provenance fields of the open request body, to spread into the route's schema:
 * `z.object({ stage, phase, ...provenanceRequestShape })`.
 */
export const provenanceRequestShape = {
  evidence: evidenceListSchema.optional(),
  artifacts: artifactListSchema.optional(),
};

export type EvidenceItem = z.infer<typeof evidenceItemSchema>;
export type DsseEnvelopeJson = z.infer<typeof dsseEnvelopeSchema>;
export type DeclaredArtifact = z.infer<typeof artifactSchema>;
