/**
 * The configuration example of docs/providers.md (all three providers) is real: it
 * loads, validates, and every grant reaches its provider's grant schema with the
 * parameters it shows.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { buildConfig } from '../../broker/config/load-config';
import { REPO_ROOT } from '../harness/broker';

function firstYamlBlock(markdown: string): string {
  const m = /```yaml\n([\s\S]*?)```/.exec(markdown);
  if (!m) throw new Error('docs/providers.md has no yaml block');
  return m[1]!;
}

it('the all-providers config example in docs/providers.md loads and validates', () => {
  const loaded = buildConfig(parse(firstYamlBlock(readFileSync(join(REPO_ROOT, 'docs', 'providers.md'), 'utf8'))), REPO_ROOT);
  expect(loaded.providers.map((p) => [p.name, p.factory.type])).toEqual([
    ['aws', 'aws-sts'],
    ['vault', 'vault'],
    ['gcp', 'gcp-iam'],
  ]);
  const stages = loaded.policy.rules[0]!.stages;
  const grants = Object.fromEntries(stages.get('deploy')!.grants.map((g) => [g.name, g]));
  expect(grants['deploy-aws']).toMatchObject({ provider: 'aws', params: { tags: { team: 'web' }, policyArns: [] } });
  // The session policy is compacted to JSON text (STS counts its characters).
  expect(JSON.parse(String(grants['deploy-aws']!.params.sessionPolicy))).toMatchObject({ Statement: [{ Effect: 'Allow', Action: ['s3:PutObject'] }] });
  expect(grants.vault).toMatchObject({ provider: 'vault', params: { type: 'token', policies: ['deploy-app'], renewable: true } });
  expect(grants.db).toMatchObject({ provider: 'vault', params: { type: 'dynamic', path: 'database/creds/app', method: 'GET' } });
  expect(grants['deploy-gcp']).toMatchObject({ provider: 'gcp', params: { serviceAccount: 'deployer@app-project.iam.gserviceaccount.com', delegates: [] } });
  expect(stages.get('publish')!.grants[0]).toMatchObject({ provider: 'vault', params: { type: 'kv', static: true, mount: 'secret' } });
});

it('a grant that nests its parameters under params: is refused, naming the grant', () => {
  const cfg = parse(firstYamlBlock(readFileSync(join(REPO_ROOT, 'docs', 'providers.md'), 'utf8')));
  cfg.rules[0].stages.publish.grants[0] = { name: 'npm', provider: 'vault', params: { type: 'kv', path: 'ci/npm', static: true } };
  expect(() => buildConfig(cfg, REPO_ROOT)).toThrow(/rules\[0\]\.stages\.publish\.grants\[0\]/);
});

describe('every grant example in docs/providers/*.md passes its provider\'s grant schema', () => {
  const { PROVIDER_FACTORIES } = require('../../providers/registry') as typeof import('../../providers/registry');
  const grantsIn = (node: unknown): Array<Record<string, unknown>> => {
    if (Array.isArray(node)) return node.flatMap(grantsIn);
    if (!node || typeof node !== 'object') return [];
    return Object.entries(node).flatMap(([k, v]) => (k === 'grants' && Array.isArray(v) ? (v as Array<Record<string, unknown>>) : grantsIn(v)));
  };
  it.each([
    ['aws-sts.md', 'aws-sts'],
    ['vault.md', 'vault'],
    ['gcp-iam.md', 'gcp-iam'],
  ])('%s', (file, type) => {
    const md = readFileSync(join(REPO_ROOT, 'docs', 'providers', file), 'utf8');
    const grants = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) => grantsIn(parse(m[1]!)));
    expect(grants.length).toBeGreaterThan(0);
    for (const { name, provider: _p, ...params } of grants) {
      const r = PROVIDER_FACTORIES.get(type)!.grantSchema.safeParse(params);
      if (!r.success) throw new Error(`${file}: grant ${String(name)}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
  });
});
