/**
 * Compiles a stage's `requires:` (provenance requirements) at load. Until the
 * provenance verifiers are wired in, any `requires:` is a config error: a stage that
 * asks for provenance must never open without it.
 */
import type { ProvenanceCheck } from '../lifecycle/stage-lifecycle';
import type { ConfigProblem, LoadedConfig } from './load-config';

export function compileStageRequirements(
  requires: unknown[] | undefined,
  stagePath: string,
  _baseDir: string,
  problems: ConfigProblem[],
): unknown {
  if (requires === undefined || requires.length === 0) return undefined;
  problems.push({ path: `${stagePath}.requires`, message: 'provenance requirements are not supported by this build' });
  return undefined;
}

/** The provenance check for a loaded config; undefined until the verifiers are wired in. */
export function provenanceCheckFor(_config: LoadedConfig): ProvenanceCheck | undefined {
  return undefined;
}
