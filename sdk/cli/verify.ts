/**
 * `stagegate verify --config FILE --stage NAME (--identity-token-file F | --claims FILE)
 *   [--evidence FILE]... [--artifact sha256:HEX]... [--json]`
 *
 * Dry-runs the broker's decision locally and explains it, issuing nothing: the identity
 * token is verified against the config's issuers (or, with `--claims`, a JSON file of
 * claims is taken as given — for policy authoring), the policy rule is found, and every
 * provenance requirement of the stage is checked against the evidence files with a
 * per-check report. Exit 0 when the stage would open, 1 when it would be denied, 2 on
 * usage or config errors. Install-lock and once-per-build state live in the broker and
 * are not part of a dry run.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { StagegateError, isStagegateError } from '../errors';

const USAGE =
  'usage: stagegate verify --config FILE --stage NAME (--identity-token-file F | --claims FILE) [--evidence FILE]... [--artifact sha256:HEX]... [--json]';

interface Outcome {
  allowed: boolean;
  stage: string;
  rule?: string;
  identity: { issuer?: string; build?: string; verified: boolean };
  denial?: { code: string; message: string; details: Record<string, unknown> };
  provenance?: unknown;
}

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        stage: { type: 'string' },
        'identity-token-file': { type: 'string' },
        claims: { type: 'string' },
        evidence: { type: 'string', multiple: true },
        artifact: { type: 'string', multiple: true },
        phase: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`stagegate verify: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const configFile = values.config as string | undefined;
  const stage = values.stage as string | undefined;
  const tokenFile = values['identity-token-file'] as string | undefined;
  const claimsFile = values.claims as string | undefined;
  if (!configFile || !stage || (!tokenFile && !claimsFile) || (tokenFile && claimsFile)) {
    process.stderr.write(`stagegate verify: give --config, --stage and exactly one of --identity-token-file or --claims\n${USAGE}\n`);
    return 2;
  }
  const phase = (values.phase as string | undefined) ?? 'run';
  if (phase !== 'run' && phase !== 'install') {
    process.stderr.write('stagegate verify: --phase is run or install\n');
    return 2;
  }

  // Heavy modules load here, not at CLI start.
  const { loadConfigFile } = require('../../broker/config/load-config') as typeof import('../../broker/config/load-config');
  const { createIdentityVerifier, renderBuildKey } = require('../../broker/identity/verify-identity-token') as typeof import('../../broker/identity/verify-identity-token');
  const { evaluatePolicy } = require('../../broker/policy/evaluate') as typeof import('../../broker/policy/evaluate');
  const { explainEvidence, toEvidenceItems } = require('../../broker/provenance') as typeof import('../../broker/provenance');

  let config;
  let evidence: unknown[] = [];
  let artifacts: Array<{ digest: { sha256: string } }> = [];
  try {
    config = loadConfigFile(configFile);
    for (const f of (values.evidence as string[] | undefined) ?? []) evidence.push(...toEvidenceItems(readFileSync(f, 'utf8')));
    artifacts = ((values.artifact as string[] | undefined) ?? []).map((a) => {
      const m = /^sha256:([0-9a-fA-F]{64})$/.exec(a);
      if (!m) throw new StagegateError('INVALID_REQUEST', `--artifact must be sha256:<64 hex digits>`);
      return { digest: { sha256: m[1]!.toLowerCase() } };
    });
  } catch (err) {
    process.stderr.write(`stagegate verify: ${isStagegateError(err) ? err.message : (err as Error).message}\n`);
    return 2;
  }

  const outcome: Outcome = { allowed: false, stage, identity: { verified: false } };
  const deny = (err: unknown) => {
    const e = isStagegateError(err) ? err : new StagegateError('INTERNAL', 'verification failed');
    outcome.denial = { code: e.code, message: e.message, details: e.details };
  };
  try {
    let issuer: string;
    let claims: Record<string, unknown>;
    if (tokenFile) {
      const who = await createIdentityVerifier(config.raw.issuers).verify(readFileSync(tokenFile, 'utf8').trim());
      issuer = who.issuer;
      claims = who.claims;
      outcome.identity = { issuer, build: who.build, verified: true };
    } else {
      const parsed = JSON.parse(readFileSync(claimsFile!, 'utf8')) as Record<string, unknown>;
      const entry = config.raw.issuers.find((i) => i.issuer === parsed.iss) ?? (config.raw.issuers.length === 1 ? config.raw.issuers[0] : undefined);
      if (!entry) throw new StagegateError('UNAUTHENTICATED', 'the claims name no configured issuer (set "iss")', { details: { reason: 'unknown-issuer' } });
      issuer = entry.name;
      claims = parsed;
      outcome.identity = { issuer, build: renderBuildKey(entry.buildKey, claims), verified: false };
    }
    const decision = evaluatePolicy(config.policy, { issuer, claims, stage, phase });
    outcome.rule = decision.rule.name;
    if (decision.stage.requires !== undefined) {
      const report = await explainEvidence(decision.stage.requires as never, { evidence, artifacts }, claims);
      outcome.provenance = report;
      if (!report.ok) {
        outcome.denial = { code: 'PROVENANCE_FAILED', message: 'provenance requirements not met', details: { failures: report.failures } };
      }
    }
    outcome.allowed = outcome.denial === undefined;
  } catch (err) {
    deny(err);
  }

  if (values.json) process.stdout.write(`${JSON.stringify(outcome)}\n`);
  else process.stdout.write(renderOutcome(outcome));
  return outcome.allowed ? 0 : 1;
}

function renderOutcome(o: Outcome): string {
  const lines: string[] = [];
  lines.push(`identity: issuer ${o.identity.issuer ?? '?'}, build ${o.identity.build ?? '?'}${o.identity.verified ? '' : ' (claims taken as given, NOT verified)'}`);
  if (o.rule) lines.push(`policy: rule '${o.rule}' allows stage '${o.stage}'`);
  const report = o.provenance as
    | { requirements: Array<{ requirement: string; ok: boolean; items: Array<{ requirement: string; ok: boolean; attempts: Array<{ evidence: { index: number; sha256: string } | null; ok: boolean; checks: Array<{ check: string; ok: boolean; reason?: string }> }> }> }> }
    | undefined;
  if (report) {
    for (const r of report.requirements) {
      lines.push(`requirement ${r.requirement}: ${r.ok ? 'PASS' : 'FAIL'}`);
      for (const item of r.items) {
        for (const a of item.attempts) {
          const ev = a.evidence ? `evidence #${a.evidence.index} (sha256 ${a.evidence.sha256.slice(0, 12)}…)` : 'no evidence';
          const checks = a.checks.map((c) => `${c.check} ${c.ok ? 'ok' : `FAILED${c.reason ? ` (${c.reason})` : ''}`}`).join(', ');
          lines.push(`  ${item.requirement} ← ${ev}: ${checks || (a.ok ? 'ok' : 'no checks ran')}`);
        }
      }
    }
  }
  if (o.denial) {
    lines.push(`DENIED ${o.denial.code}: ${o.denial.message}`);
    if (o.denial.code !== 'PROVENANCE_FAILED' && Object.keys(o.denial.details).length > 0) lines.push(`  details: ${JSON.stringify(o.denial.details)}`);
  } else lines.push(`ALLOWED: stage '${o.stage}' would open`);
  return `${lines.join('\n')}\n`;
}
