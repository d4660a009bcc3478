/**
 * Policy compiled at load: rules with their claim matchers, stages with resolved TTLs
 * and grants. Pure: no I/O, no providers.
 */
import type { RuleConfig, StageConfig } from '../config/config-schema';
import { compileClaimPattern, type ClaimMatcher } from './claim-pattern';

export interface CompiledGrant {
  readonly name: string;
  readonly provider: string;
  /** Provider-specific params, validated by the provider's grant schema. */
  readonly params: Record<string, unknown>;
}

export interface CompiledStage {
  readonly name: string;
  readonly phase: 'run' | 'install';
  readonly ttlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly heartbeatSeconds: number;
  readonly once: boolean;
  readonly requireInstallPhase: boolean;
  readonly grants: readonly CompiledGrant[];
  /** Compiled provenance requirements (opaque here), or undefined when none. */
  readonly requires: unknown;
}

export interface CompiledRule {
  readonly name: string;
  readonly issuer: string;
  readonly claims: ReadonlyArray<{ readonly claim: string; readonly matchers: readonly ClaimMatcher[]; readonly patterns: readonly unknown[] }>;
  readonly stages: ReadonlyMap<string, CompiledStage>;
}

export interface CompiledPolicy {
  readonly rules: readonly CompiledRule[];
}

export function compileStage(
  name: string,
  stage: StageConfig,
  grants: readonly CompiledGrant[],
  requires: unknown,
): CompiledStage {
  return {
    name,
    phase: stage.phase,
    ttlSeconds: stage.ttl,
    maxTtlSeconds: stage.maxTtl ?? stage.ttl,
    heartbeatSeconds: stage.heartbeat,
    once: stage.once,
    requireInstallPhase: stage.requireInstallPhase,
    grants,
    requires,
  };
}

export function compileRule(rule: RuleConfig, stages: ReadonlyMap<string, CompiledStage>): CompiledRule {
  return {
    name: rule.name,
    issuer: rule.issuer,
    claims: Object.entries(rule.claims).map(([claim, pattern]) => {
      const patterns = Array.isArray(pattern) ? pattern : [pattern];
      return { claim, patterns, matchers: patterns.map(compileClaimPattern) };
    }),
    stages,
  };
}
