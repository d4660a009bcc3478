/**
 * Provenance-gated issuance (DESIGN.md guarantee 2): a stage whose policy `requires:`
 * evidence gets nothing until that evidence verifies.
 *
 * Wiring:
 * - config load: validate each stage's `requires:` with {@link requirementsSchema}
 *   (or let {@link compileRequirements} do it) and compile it once with
 *   `compileRequirements(raw, { baseDir, trustedRoots, path: 'stages.NAME.requires' })`;
 * - HTTP layer: `checkEvidenceLimits(body.evidence)` before zod, then
 *   `provenanceRequestShape` in the body schema;
 * - stage lifecycle (after identity, before issuing):
 *   `await verifyEvidence(compiled, { evidence, artifacts }, claims)` → facts, or a
 *   `PROVENANCE_FAILED` StagegateError;
 * - `stagegate verify` dry run: {@link explainEvidence}.
 */
export { PROVENANCE_CHECKS, type CheckResult, type ProvenanceCheck } from './provenance-check';
export {
  BINDABLE_FACTS,
  bindingSchema,
  dsseRequirementSchema,
  requirementEntrySchema,
  requirementItemSchema,
  requirementsSchema,
  sigstoreRequirementSchema,
  slsaRequirementSchema,
  type BindableFact,
  type RequirementsConfig,
} from './requirements-schema';
export {
  compileRequirements,
  isCompiledRequirements,
  type CompileRequirementsOptions,
  type CompiledRequirements,
  type ConfigProblem,
} from './compile-requirements';
export {
  MAX_ARTIFACTS,
  MAX_EVIDENCE_ITEMS,
  artifactListSchema,
  artifactSchema,
  evidenceItemSchema,
  evidenceListSchema,
  provenanceRequestShape,
  type DeclaredArtifact,
  type EvidenceItem,
} from './evidence-schema';
export { DEFAULT_EVIDENCE_LIMITS, checkEvidenceLimits, type EvidenceLimits } from './evidence-limits';
export { toEvidenceItem, toEvidenceItems } from './evidence-document';
export {
  DEFAULT_VERIFY_TIMEOUT_MS,
  explainEvidence,
  verifyEvidence,
  type EntryReport,
  type EvidenceInput,
  type EvidenceRef,
  type EvidenceReport,
  type ProvenanceFacts,
  type RequirementFailure,
  type TokenClaims,
  type VerifiedProvenance,
  type VerifyEvidenceOptions,
} from './evidence-verifier';
export { BUILTIN_TRUSTED_ROOTS, PUBLIC_GOOD_TRUSTED_ROOT } from './trusted-root';
export { preAuthEncoding } from './dsse-envelope';
