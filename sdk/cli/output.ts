/**
 * What the CLI tells the user, on stderr (stdout belongs to the stage command): human
 * lines prefixed `stagegate:`, or with `--json` one JSON object per line.
 *
 * Only non-secret facts ever reach this module's output: names, providers, kinds,
 * revocation methods, times, stage ids, error codes and the broker's non-secret details.
 * It is never handed a credential value or token.
 */
import type { ClosedStage, Credential, OpenedStage } from '../client';
import { isStagegateError } from '../errors';
import type { RefusalEvent } from '../local-endpoints/server';

export interface Reporter {
  opened(opened: OpenedStage, deliver: string): void;
  refreshed(credentials: readonly Credential[]): void;
  exposedInEnv(names: readonly string[], reason: string): void;
  refused(event: RefusalEvent): void;
  warn(code: string, message: string): void;
  error(err: unknown): void;
  closed(closed: ClosedStage, exit: { code?: number; signal?: string }): void;
}

/**
 * Create the reporter.
 *
 * @example
 * ```ts
 * const out = createReporter({ json: config.json, write: (s) => process.stderr.write(s) });
 * out.warn('HEARTBEAT_FAILED', 'the broker did not answer a heartbeat');
 * ```
 */
export function createReporter(options: { readonly json: boolean; readonly write: (line: string) => void }): Reporter {
  const human = (text: string) => options.write(`stagegate: ${text}\n`);
  const json = (event: string, fields: Record<string, unknown>) => options.write(`${JSON.stringify({ stagegate: event, ...fields })}\n`);
  const describe = (c: Credential) => ({ name: c.name, provider: c.provider, kind: c.kind, revocation: c.revocation, expiresAt: c.expiresAt });

  return {
    opened(o, deliver) {
      if (options.json) {
        return json('stage.opened', {
          stageId: o.stageId, stage: o.stage, build: o.build, rule: o.rule, phase: o.phase, expiresAt: o.expiresAt,
          heartbeatSeconds: o.heartbeatSeconds, deliver, credentials: o.credentials.map(describe),
        });
      }
      human(`stage ${o.stage} opened (id ${o.stageId}, rule ${o.rule}, build ${o.build}, expires ${o.expiresAt})`);
      for (const c of o.credentials) {
        human(`  ${c.name}: ${c.kind} from ${c.provider}, delivered by ${deliver}, revocation ${c.revocation}, expires ${c.expiresAt}`);
      }
    },
    refreshed(creds) {
      if (options.json) return json('credentials.refreshed', { credentials: creds.map(describe) });
      human(`refreshed ${creds.map((c) => `${c.name} (expires ${c.expiresAt})`).join(', ')}`);
    },
    exposedInEnv(names, reason) {
      if (options.json) return json('warning', { code: 'SECRETS_IN_ENV', variables: names, reason });
      human(`WARNING: secret values are in the environment of the stage command and all its descendants: ${names.join(', ')} (${reason})`);
    },
    refused(e) {
      if (options.json) return json('endpoint.refused', { endpoint: e.endpoint, status: e.status, code: e.code });
      human(`refused a request to the ${e.endpoint} endpoint: ${e.code} (HTTP ${e.status})`);
    },
    warn(code, message) {
      if (options.json) return json('warning', { code, message });
      human(`warning: ${message} [${code}]`);
    },
    error(err) {
      if (isStagegateError(err)) {
        if (options.json) return json('error', { code: err.code, message: err.message, details: err.details });
        human(`error ${err.code}: ${err.message}`);
        if (Object.keys(err.details).length > 0) human(`  details: ${JSON.stringify(err.details)}`);
        return;
      }
      // Not ours: show its class only; a foreign message is not vetted for secrets.
      const name = err instanceof Error ? err.name : typeof err;
      if (options.json) return json('error', { code: 'INTERNAL', message: `unexpected ${name}` });
      human(`error INTERNAL: unexpected ${name}`);
    },
    closed(c, exit) {
      if (options.json) return json('stage.closed', { stageId: c.stageId, state: c.state, exit, revoked: c.revoked });
      const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
      human(`stage closed (${c.state}) after the command ended with ${how}`);
      for (const r of c.revoked) {
        const state = r.state && r.state !== 'revoked' ? ` [${r.state}]` : '';
        const when = r.effectiveAt && r.effectiveAt !== r.at ? `, effective ${r.effectiveAt}` : '';
        human(`  revoked ${r.name} (${r.provider}) by ${r.method}${r.at ? ` at ${r.at}` : ''}${when}${state}`);
      }
      if (c.revoked.length === 0) human('  no credentials to revoke');
    },
  };
}
