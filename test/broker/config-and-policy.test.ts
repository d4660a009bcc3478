import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, buildConfig, loadConfigFile } from '../../broker/config/load-config';
import { compileClaimPattern } from '../../broker/policy/claim-pattern';
import { evaluatePolicy } from '../../broker/policy/evaluate';
import { isStagegateError } from '../../sdk/errors';

const base = () => ({
  issuers: [{ name: 'ci', issuer: 'https://token.actions.githubusercontent.com', jwksUri: 'https://example.invalid/jwks', audience: 'stagegate', buildKey: '{repository}/{run_id}/{run_attempt}' }],
  providers: { dev: { type: 'dev' } },
  rules: [
    {
      name: 'web-main',
      issuer: 'ci',
      claims: { repository: 'acme/web', ref: 'refs/heads/main' },
      stages: { deploy: { ttl: '15m', grants: [{ name: 'deployer', provider: 'dev', scope: ['deploy'] }] } },
    },
  ],
});

function problemsOf(mutate: (c: any) => void): Array<{ path: string; message: string }> {
  const c: any = base();
  mutate(c);
  try {
    buildConfig(c, '/tmp');
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('config validation names every mistake by its path', () => {
  it('accepts the contract example from the issue', () => {
    const cfg = buildConfig(base(), '/tmp');
    expect(cfg.policy.rules[0]!.stages.get('deploy')).toMatchObject({ ttlSeconds: 900, maxTtlSeconds: 900, heartbeatSeconds: 30, once: true, phase: 'run' });
    expect(cfg.raw.store.sqlite!.path).toBe('./stagegate.db');
  });

  it.each<[string, (c: any) => void, string, RegExp]>([
    ['an unknown top-level key', (c) => (c.colour = 'blue'), '', /colour/],
    ['an issuer that is not a URL', (c) => (c.issuers[0].issuer = 'nope'), 'issuers[0].issuer', /URL/i],
    ['a build key without a claim', (c) => (c.issuers[0].buildKey = 'static'), 'issuers[0].buildKey', /claim/],
    ['an HMAC algorithm', (c) => (c.issuers[0].algorithms = ['HS256']), 'issuers[0].algorithms[0]', /./],
    ['a rule naming an unknown issuer', (c) => (c.rules[0].issuer = 'gitlab'), 'rules[0].issuer', /unknown issuer 'gitlab'/],
    ['a grant naming an unknown provider', (c) => (c.rules[0].stages.deploy.grants[0].provider = 'aws'), 'rules[0].stages.deploy.grants[0].provider', /unknown provider 'aws'/],
    ['an unknown provider type', (c) => (c.providers.dev.type = 'azure'), 'providers.dev.type', /unknown provider type 'azure'/],
    ['a bad field in a provider section', (c) => (c.providers.dev.ledger = 5), 'providers.dev.ledger', /./],
    ['a grant param the provider does not know', (c) => (c.rules[0].stages.deploy.grants[0].region = 'x'), 'rules[0].stages.deploy.grants[0]', /region/],
    ['a bad credential kind', (c) => (c.rules[0].stages.deploy.grants[0].kind = 'ssh'), 'rules[0].stages.deploy.grants[0].kind', /./],
    ['a bad duration', (c) => (c.rules[0].stages.deploy.ttl = '15 minutes'), 'rules[0].stages.deploy.ttl', /duration/],
    ['maxTtl below ttl', (c) => (c.rules[0].stages.deploy.maxTtl = '5m'), 'rules[0].stages.deploy.maxTtl', /at least ttl/],
    ['grants on an install stage', (c) => (c.rules[0].stages.deploy.phase = 'install'), 'rules[0].stages.deploy.grants', /install stage cannot have grants/],
    ['duplicate grant names', (c) => c.rules[0].stages.deploy.grants.push({ name: 'deployer', provider: 'dev' }), 'rules[0].stages.deploy.grants[1].name', /duplicate/],
    ['duplicate rule names', (c) => c.rules.push({ ...c.rules[0] }), 'rules[1].name', /duplicate rule/],
    ['a stage field typo', (c) => (c.rules[0].stages.deploy.ttls = '5m'), 'rules[0].stages.deploy', /ttls/],
    ['a demo issuer that does not exist', (c) => (c.demoIssuer = { enabled: true, issuer: 'nope' }), 'demoIssuer.issuer', /no issuer named/],
  ])('%s', (_name, mutate, path, message) => {
    const problems = problemsOf(mutate);
    expect(problems.length).toBeGreaterThan(0);
    const p = problems.find((x) => x.path === path);
    expect(p).toBeDefined();
    expect(p!.message).toMatch(message);
  });

  it('reports all mistakes at once, and loads YAML files with clear syntax errors', () => {
    const problems = problemsOf((c) => {
      c.rules[0].issuer = 'x';
      c.rules[0].stages.deploy.grants[0].provider = 'y';
    });
    expect(problems.map((p) => p.path)).toEqual(['rules[0].issuer', 'rules[0].stages.deploy.grants[0].provider']);
    const dir = mkdtempSync(join(tmpdir(), 'sg-cfg-'));
    writeFileSync(join(dir, 'bad.yaml'), 'issuers: [\n  - name: x\n');
    expect(() => loadConfigFile(join(dir, 'bad.yaml'))).toThrow(/line/);
    writeFileSync(join(dir, 'dup.yaml'), 'listen: {}\nlisten: {}\n');
    expect(() => loadConfigFile(join(dir, 'dup.yaml'))).toThrow(ConfigError);
    expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(/cannot read/);
  });

  it('the shipped dev config is valid', () => {
    expect(() => loadConfigFile(join(__dirname, '..', '..', 'examples', 'dev.yaml'))).not.toThrow();
  });
});

describe('claim patterns', () => {
  it.each<[string | boolean, unknown, boolean]>([
    ['acme/web', 'acme/web', true],
    ['acme/web', 'acme/web2', false],
    ['acme/*', 'acme/web', true],
    ['acme/*', 'acme/web/extra', false],
    ['acme/**', 'acme/web/extra', true],
    ['refs/heads/release-?', 'refs/heads/release-1', true],
    ['refs/heads/release-?', 'refs/heads/release-10', false],
    ['a.b', 'aXb', false],
    ['(x)+', '(x)+', true],
    [true, true, true],
    [true, 'true', false],
    ['*', 7, false],
  ])('%p against %p → %p', (pattern, value, expected) => {
    expect(compileClaimPattern(pattern)(value)).toBe(expected);
  });
});

describe('policy evaluation', () => {
  const policy = buildConfig(
    {
      ...base(),
      rules: [
        { name: 'main', issuer: 'ci', claims: { repository: 'acme/web', ref: ['refs/heads/main', 'refs/tags/v*'] }, stages: { deploy: { grants: [] }, install: { phase: 'install' } } },
        { name: 'any-branch', issuer: 'ci', claims: { repository: 'acme/web', ref: 'refs/heads/**' }, stages: { test: { grants: [] } } },
      ],
    },
    '/tmp',
  ).policy;
  const claims = { repository: 'acme/web', ref: 'refs/heads/main' };

  it.each<[string, Record<string, unknown>, string, 'run' | 'install', string | { code: string; reason: string; rule?: string; claim?: string }]>([
    ['main deploys', claims, 'deploy', 'run', 'main'],
    ['a tag deploys', { ...claims, ref: 'refs/tags/v1.2' }, 'deploy', 'run', 'main'],
    ['a branch does not deploy', { ...claims, ref: 'refs/heads/dev' }, 'deploy', 'run', { code: 'POLICY_DENIED', reason: 'claims', rule: 'main', claim: 'ref' }],
    ['a branch tests', { ...claims, ref: 'refs/heads/feature/x' }, 'test', 'run', 'any-branch'],
    ['a missing claim fails closed', { repository: 'acme/web' }, 'deploy', 'run', { code: 'POLICY_DENIED', reason: 'claims', claim: 'ref' }],
    ['another repository', { ...claims, repository: 'evil/web' }, 'deploy', 'run', { code: 'POLICY_DENIED', reason: 'claims', claim: 'repository' }],
    ['an undefined stage', claims, 'publish', 'run', { code: 'POLICY_DENIED', reason: 'no-rule' }],
    ['install as install', claims, 'install', 'install', 'main'],
    ['install as run', claims, 'install', 'run', { code: 'POLICY_DENIED', reason: 'phase' }],
  ])('%s', (_n, c, stage, phase, expected) => {
    let result: string | Record<string, unknown>;
    try {
      result = evaluatePolicy(policy, { issuer: 'ci', claims: c, stage, phase }).rule.name;
    } catch (err) {
      if (!isStagegateError(err)) throw err;
      result = { code: err.code, ...err.details };
    }
    if (typeof expected === 'string') expect(result).toBe(expected);
    else expect(result).toMatchObject(expected);
  });
});
