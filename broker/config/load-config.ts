/**
 * Reads and validates the broker's YAML file once, at start. Every mistake is reported
 * with its path (`rules[0].stages.deploy.grants[1].provider: unknown provider 'aws'`);
 * a config with any mistake does not start.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { StagegateError } from '../../sdk/errors';
import { PROVIDER_FACTORIES } from '../../providers/registry';
import type { ProviderFactory } from '../../providers/provider';
import { compileRule, compileStage, type CompiledGrant, type CompiledPolicy, type CompiledStage } from '../policy/compile-policy';
import { configSchema, type RawConfig } from './config-schema';
import { compileStageRequirements } from './stage-requirements';

export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

export interface ProviderSetup {
  readonly name: string;
  readonly factory: ProviderFactory<unknown, unknown>;
  readonly config: unknown;
}

export interface LoadedConfig {
  readonly raw: RawConfig;
  readonly policy: CompiledPolicy;
  readonly providers: readonly ProviderSetup[];
  /** Folder of the config file: relative paths in it resolve from here. */
  readonly baseDir: string;
}

export class ConfigError extends StagegateError {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super('CONFIG_INVALID', `invalid config:\n${problems.map((p) => `  ${p.path || '(root)'}: ${p.message}`).join('\n')}`, {
      details: { problems },
    });
  }
}

function pathOf(segments: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out ? `.${String(s)}` : String(s);
  return out;
}

function zodProblems(error: z.ZodError, prefix: ReadonlyArray<PropertyKey> = []): ConfigProblem[] {
  return error.issues.map((issue) => ({ path: pathOf([...prefix, ...issue.path]), message: issue.message }));
}

/** Load a config file. Throws {@link ConfigError} naming every problem. */
export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: `line ${e.linePos?.[0]?.line ?? '?'}`, message: e.message.split('\n')[0]! })));
  }
  return buildConfig(doc.toJS(), dirname(resolve(file)));
}

/** Validate an already-parsed config object (used by tests and by loadConfigFile). */
export function buildConfig(input: unknown, baseDir: string): LoadedConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) throw new ConfigError(zodProblems(parsed.error));
  const raw = parsed.data;
  const problems: ConfigProblem[] = [];

  const issuerNames = new Set<string>();
  raw.issuers.forEach((iss, i) => {
    if (issuerNames.has(iss.name)) problems.push({ path: `issuers[${i}].name`, message: `duplicate issuer name '${iss.name}'` });
    issuerNames.add(iss.name);
    if (raw.issuers.findIndex((o) => o.issuer === iss.issuer) !== i) {
      problems.push({ path: `issuers[${i}].issuer`, message: 'two issuers share this issuer URL' });
    }
  });

  if (raw.demoIssuer.enabled) {
    const demo = raw.issuers.find((i) => i.name === raw.demoIssuer.issuer);
    if (!demo) problems.push({ path: 'demoIssuer.issuer', message: `no issuer named '${raw.demoIssuer.issuer}'` });
    else if (demo.jwks || demo.jwksUri) {
      problems.push({ path: 'demoIssuer.issuer', message: 'the demo issuer supplies its own keys: remove jwks/jwksUri from that issuer' });
    }
  }

  const providers = new Map<string, ProviderSetup>();
  for (const [name, section] of Object.entries(raw.providers)) {
    const factory = PROVIDER_FACTORIES.get(section.type);
    if (!factory) {
      problems.push({ path: `providers.${name}.type`, message: `unknown provider type '${section.type}' (known: ${[...PROVIDER_FACTORIES.keys()].join(', ')})` });
      continue;
    }
    const r = factory.configSchema.safeParse(section);
    if (!r.success) problems.push(...zodProblems(r.error, ['providers', name]));
    else providers.set(name, { name, factory, config: r.data });
  }

  const ruleNames = new Set<string>();
  const rules = raw.rules.map((rule, ri) => {
    const rpath = `rules[${ri}]`;
    if (ruleNames.has(rule.name)) problems.push({ path: `${rpath}.name`, message: `duplicate rule name '${rule.name}'` });
    ruleNames.add(rule.name);
    if (!issuerNames.has(rule.issuer)) problems.push({ path: `${rpath}.issuer`, message: `unknown issuer '${rule.issuer}'` });
    const stages = new Map<string, CompiledStage>();
    for (const [stageName, stage] of Object.entries(rule.stages)) {
      const spath = `${rpath}.stages.${stageName}`;
      if (stage.maxTtl !== undefined && stage.maxTtl < stage.ttl) {
        problems.push({ path: `${spath}.maxTtl`, message: 'maxTtl must be at least ttl' });
      }
      if (stage.heartbeat > (stage.maxTtl ?? stage.ttl)) {
        problems.push({ path: `${spath}.heartbeat`, message: 'heartbeat must not exceed the stage lifetime' });
      }
      if (stage.phase === 'install') {
        // The point of an install phase is that nothing is issued while it runs.
        if (stage.grants.length > 0) problems.push({ path: `${spath}.grants`, message: 'an install stage cannot have grants' });
        if (stage.requireInstallPhase) problems.push({ path: `${spath}.requireInstallPhase`, message: 'not allowed on an install stage' });
      }
      const grantNames = new Set<string>();
      const grants: CompiledGrant[] = [];
      stage.grants.forEach((g, gi) => {
        const gpath = `${spath}.grants[${gi}]`;
        if (grantNames.has(g.name)) problems.push({ path: `${gpath}.name`, message: `duplicate grant name '${g.name}'` });
        grantNames.add(g.name);
        const setup = providers.get(g.provider);
        if (!setup) {
          if (!(g.provider in raw.providers)) problems.push({ path: `${gpath}.provider`, message: `unknown provider '${g.provider}'` });
          return;
        }
        const { name: _n, provider: _p, ...params } = g;
        const r = setup.factory.grantSchema.safeParse(params);
        if (!r.success) problems.push(...zodProblems(r.error, ['rules', ri, 'stages', stageName, 'grants', gi]));
        else grants.push({ name: g.name, provider: g.provider, params: r.data as Record<string, unknown> });
      });
      const requires = compileStageRequirements(stage.requires, spath, baseDir, problems);
      stages.set(stageName, compileStage(stageName, stage, grants, requires));
    }
    return compileRule(rule, stages);
  });

  if (problems.length > 0) throw new ConfigError(problems);
  return { raw, policy: { rules }, providers: [...providers.values()], baseDir };
}
