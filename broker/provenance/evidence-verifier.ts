/**
 * The contract between the stage lifecycle and provenance verification (issue 4).
 *
 * `compileRequirements(raw, path)` is called once at config load for a stage's
 * `requires:` list; it returns problems with their config paths or a compiled form.
 * `verifyEvidence(compiled, evidence, claims)` runs per open request and either
 * returns the verified facts or throws `StagegateError('PROVENANCE_FAILED', …, { details })`
 * naming the requirement, the evidence item and the failed check.
 */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}
