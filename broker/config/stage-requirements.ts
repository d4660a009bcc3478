/**
 * Compiles a stage's `requires:` (provenance requirements) at load, once: keys and
 * trusted roots are read and parsed here, never per request. Problems are reported
 * with their config paths like every other config mistake.
 */
import { isStagegateError } from '../../sdk/errors';
import { compileRequirements, verifyEvidence, type CompiledRequirements } from '../provenance';
import type { ProvenanceCheck } from '../lifecycle/stage-lifecycle';
import type { ConfigProblem, LoadedConfig } from './load-config';

export function compileStageRequirements(
  requires: unknown[] | undefined,
  stagePath: string,
  baseDir: string,
  problems: ConfigProblem[],
): CompiledRequirements | undefined {
  if (requires === undefined) return undefined;
  if (requires.length === 0) {
    problems.push({ path: `${stagePath}.requires`, message: 'an empty requires list would require nothing: remove it or add a requirement' });
    return undefined;
  }
  try {
    return compileRequirements(requires, { baseDir, path: `${stagePath}.requires` });
  } catch (err) {
    if (isStagegateError(err, 'CONFIG_INVALID')) {
      problems.push(...((err.details.problems as ConfigProblem[] | undefined) ?? [{ path: `${stagePath}.requires`, message: err.message }]));
      return undefined;
    }
    throw err;
  }
}

/** The provenance check the stage lifecycle runs for stages with `requires:`. */
export function provenanceCheckFor(_config: LoadedConfig): ProvenanceCheck {
  return async (requires, input, claims) => verifyEvidence(requires as CompiledRequirements, input, claims);
}
