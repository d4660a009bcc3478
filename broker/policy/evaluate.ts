/**
 * Per-request policy decision: which rule lets this identity open this stage. Pure.
 * A denial names the rule(s) considered and the claim that failed, so an operator can
 * fix the policy or the pipeline without guessing.
 */
import { StagegateError } from '../../sdk/errors';
import type { CompiledPolicy, CompiledRule, CompiledStage } from './compile-policy';

export interface PolicyRequest {
  /** Configured issuer name that verified the token. */
  readonly issuer: string;
  readonly claims: Readonly<Record<string, unknown>>;
  readonly stage: string;
  readonly phase: 'run' | 'install';
}

export interface PolicyDecision {
  readonly rule: CompiledRule;
  readonly stage: CompiledStage;
}

interface RuleMiss {
  readonly rule: string;
  readonly claim: string;
  readonly reason: 'missing' | 'mismatch';
}

/** Short, non-secret rendering of a claim value for a denial (claims are not secrets, but bound their size). */
function show(value: unknown): unknown {
  if (typeof value === 'string') return value.length > 128 ? `${value.slice(0, 128)}…` : value;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return value ?? null;
  return `<${Array.isArray(value) ? 'array' : typeof value}>`;
}

export function evaluatePolicy(policy: CompiledPolicy, req: PolicyRequest): PolicyDecision {
  const misses: RuleMiss[] = [];
  let phaseMismatch: { rule: string; phase: string } | undefined;
  for (const rule of policy.rules) {
    if (rule.issuer !== req.issuer) continue;
    const stage = rule.stages.get(req.stage);
    if (!stage) continue;
    const miss = firstMiss(rule, req.claims);
    if (miss) {
      misses.push(miss);
      continue;
    }
    if (stage.phase !== req.phase) {
      phaseMismatch ??= { rule: rule.name, phase: stage.phase };
      continue;
    }
    return { rule, stage };
  }
  if (phaseMismatch) {
    throw new StagegateError(
      'POLICY_DENIED',
      `stage '${req.stage}' is a ${phaseMismatch.phase} stage in rule '${phaseMismatch.rule}', not a ${req.phase} stage`,
      { details: { stage: req.stage, rule: phaseMismatch.rule, reason: 'phase', expected: phaseMismatch.phase, requested: req.phase } },
    );
  }
  if (misses.length === 0) {
    throw new StagegateError('POLICY_DENIED', `no rule for issuer '${req.issuer}' defines stage '${req.stage}'`, {
      details: { stage: req.stage, issuer: req.issuer, reason: 'no-rule' },
    });
  }
  const first = misses[0]!;
  throw new StagegateError(
    'POLICY_DENIED',
    `rule '${first.rule}' does not match: claim '${first.claim}' is ${first.reason === 'missing' ? 'missing' : 'not allowed'}`,
    {
      details: {
        stage: req.stage,
        reason: 'claims',
        rule: first.rule,
        claim: first.claim,
        value: show(req.claims[first.claim]),
        rules: misses.map((m) => ({ rule: m.rule, claim: m.claim, reason: m.reason })),
      },
    },
  );
}

function firstMiss(rule: CompiledRule, claims: Readonly<Record<string, unknown>>): RuleMiss | undefined {
  for (const { claim, matchers } of rule.claims) {
    if (!(claim in claims)) return { rule: rule.name, claim, reason: 'missing' };
    const value = claims[claim];
    const values = Array.isArray(value) ? value : [value];
    // An array claim (e.g. `aud`, `groups`) matches when any element matches.
    if (!values.some((v) => matchers.some((m) => m(v)))) return { rule: rule.name, claim, reason: 'mismatch' };
  }
  return undefined;
}
