/**
 * `stagegate run --stage NAME [options] -- CMD ARGS…`
 *
 * open the stage → serve its credentials on loopback endpoints → spawn CMD (stdio
 * inherited) → heartbeat while it runs → when CMD exits (or a SIGINT/SIGTERM/SIGHUP sent
 * to us was forwarded to it and it exited): stop the endpoints, close (revoke) the stage,
 * report what was revoked and how, remove the temp files, and exit with CMD's status.
 *
 * If this process is SIGKILLed, nothing here runs: the broker reaps the stage when its
 * heartbeats stop (the stage's `heartbeatSeconds`).
 *
 * Start-up cost matters (`stagegate run -- true` ≤ 250 ms over `true`): only the client,
 * zod and node built-ins are loaded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { createStagegateClient, type Credential, type OpenedStage } from '../client';
import { isStagegateError } from '../errors';
import { startStageHeartbeat } from '../heartbeat';
import { createIdentityTokenSource } from '../identity-token';
import { buildStageEnv } from '../local-endpoints/delivery-env';
import { startLocalCredentialEndpoints, type LocalEndpoints } from '../local-endpoints/server';
import { createStageFiles } from '../local-endpoints/stage-files';
import { createStageGate } from '../local-endpoints/stage-gate';
import {
  EXIT_NOT_EXECUTABLE,
  EXIT_NOT_FOUND,
  EXIT_STAGE_NOT_OPENED,
  EXIT_USAGE,
  RUN_USAGE,
  loadRunConfig,
  readEvidenceFiles,
  type RunConfig,
} from './config';
import { createReporter, type Reporter } from './output';

/** Signals we forward to CMD; the stage is closed once CMD has exited. */
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** Bound on the endpoints' "is the stage open?" question to the broker, in milliseconds. */
const GATE_TIMEOUT_MS = 700;

type ChildOutcome = { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null } | { kind: 'spawn-failed'; errno: string };

/**
 * Entry point of `stagegate run`; resolves to the process exit status.
 *
 * @example
 * ```ts
 * process.exitCode = await main(['--stage', 'deploy', '--', 'make', 'deploy']);
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  const write = (s: string) => void process.stderr.write(s);
  let config: RunConfig;
  let evidence: object[];
  try {
    config = loadRunConfig(argv);
    if (config.help) {
      process.stdout.write(`${RUN_USAGE}\n`);
      return 0;
    }
    evidence = readEvidenceFiles(config.evidenceFiles);
  } catch (err) {
    createReporter({ json: argv.includes('--json'), write }).error(err);
    if (!argv.includes('--json')) write(`${RUN_USAGE}\n`);
    return EXIT_USAGE;
  }
  const out = createReporter({ json: config.json, write });
  const client = createStagegateClient({
    brokerUrl: config.brokerUrl,
    identityToken: createIdentityTokenSource(config.identity),
    timeoutMs: config.timeoutMs,
  });

  // Trap signals before opening: a SIGTERM during the open must still close the stage.
  const ctl: SignalControl = { child: undefined, received: undefined };
  const onSignal = (sig: NodeJS.Signals) => {
    ctl.received ??= sig;
    // Forward; CMD decides how to end, and its exit is what closes the stage. (From a
    // terminal, CMD usually got SIGINT already through the process group; a second one
    // is what npm, yarn and tini do as well.)
    const child = ctl.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const s of FORWARDED_SIGNALS) process.on(s, onSignal);
  try {
    let opened: OpenedStage;
    try {
      opened = await client.openStage({ stage: config.stage, phase: 'run', evidence, artifacts: config.artifacts });
    } catch (err) {
      out.error(err);
      return EXIT_STAGE_NOT_OPENED;
    }
    out.opened(opened, config.deliver);
    return await runOpenStage(config, client, opened, out, ctl, () => {
      for (const s of FORWARDED_SIGNALS) process.off(s, onSignal);
    });
  } finally {
    for (const s of FORWARDED_SIGNALS) process.off(s, onSignal);
  }
}

interface SignalControl {
  child: ChildProcess | undefined;
  /** The first forwarded signal we received, if any. */
  received: NodeJS.Signals | undefined;
}

async function runOpenStage(
  config: RunConfig,
  client: ReturnType<typeof createStagegateClient>,
  opened: OpenedStage,
  out: Reporter,
  ctl: SignalControl,
  releaseSignals: () => void,
): Promise<number> {
  // From here on, every path closes the stage.
  const current = new Map<string, Credential>(opened.credentials.map((c) => [c.name, c]));
  let files: ReturnType<typeof createStageFiles> | undefined;
  let endpoints: LocalEndpoints | undefined;

  const beat = startStageHeartbeat({
    client,
    stageId: opened.stageId,
    stageToken: opened.stageToken,
    heartbeatSeconds: opened.heartbeatSeconds,
    onCredentials: (fresh) => {
      for (const c of fresh) current.set(c.name, c);
      endpoints?.updateCredentials(fresh);
      if (config.deliver === 'endpoint' && fresh.some((c) => c.kind === 'secret')) files?.writeSecrets([...current.values()]);
      out.refreshed(fresh);
      if (config.deliver === 'env') out.warn('REFRESH_NOT_DELIVERED', 'refreshed credentials cannot reach a running command with --deliver env');
    },
    onError: (err) => out.warn('HEARTBEAT_FAILED', `heartbeat failed (${isStagegateError(err) ? err.code : err.name}); retrying`),
    onLost: (err) => out.warn('STAGE_LOST', `the broker reports the stage gone (${err.code}); its credentials are no longer served`),
  });

  let outcome: ChildOutcome = { kind: 'spawn-failed', errno: 'ESETUP' };
  try {
    files = createStageFiles();
    if (config.deliver === 'endpoint' && opened.credentials.some((c) => c.kind !== 'secret')) {
      // The gate answers inside an SDK's credential fetch (AWS SDKs give up after 1 s):
      // one short attempt, no retries; a refusal is simply asked again next time.
      const gateClient = createStagegateClient({ brokerUrl: config.brokerUrl, timeoutMs: GATE_TIMEOUT_MS, retries: 0 });
      const gate = createStageGate({ getStage: () => gateClient.getStage(opened.stageId, opened.stageToken) });
      endpoints = await startLocalCredentialEndpoints({
        credentials: opened.credentials,
        gate,
        gceAllowAnyLocal: config.gceAllowAnyLocal,
        vaultProxy: config.vaultProxy,
        vaultCaCert: config.vaultCaCert,
        onRefused: (e) => out.refused(e),
      });
    }
    const { env, exposed } = buildStageEnv({
      baseEnv: config.baseEnv,
      mode: config.deliver,
      credentials: opened.credentials,
      endpoints,
      files,
    });
    if (exposed.length > 0) {
      out.exposedInEnv(exposed, config.deliver === 'env' ? '--deliver env' : 'this credential kind has no endpoint here (see --vault-direct)');
    }
    if (ctl.received === undefined) {
      const [cmd, ...args] = config.command;
      const child = spawn(cmd!, args, { stdio: 'inherit', env });
      ctl.child = child;
      if (child.pid !== undefined) endpoints?.setStageProcess(child.pid);
      outcome = await waitForChild(child);
      if (outcome.kind === 'spawn-failed') {
        // argv[0] only: arguments may carry values the user would not want in a CI log.
        out.warn('COMMAND_FAILED', `cannot run ${JSON.stringify(cmd)} (${outcome.errno})`);
      }
    } else {
      outcome = { kind: 'exited', code: null, signal: ctl.received };
    }
  } catch (err) {
    out.error(err);
  } finally {
    await beat.stop();
    await endpoints?.close();
  }

  const exitCode = exitStatusOf(outcome);
  try {
    const closed = await client.closeStage(opened.stageId, opened.stageToken, { exitCode });
    out.closed(closed, outcome.kind === 'exited' && outcome.signal ? { signal: outcome.signal } : { code: exitCode });
  } catch (err) {
    out.error(err);
    out.warn('CLOSE_FAILED', 'the stage could not be closed; the broker revokes it when its heartbeat window ends');
  } finally {
    files?.remove();
    releaseSignals();
  }

  if (outcome.kind === 'exited' && outcome.signal) {
    // Die the way CMD died, so our parent sees the same signal.
    process.kill(process.pid, outcome.signal);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return exitCode;
}

function waitForChild(child: ChildProcess): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) resolve({ kind: 'spawn-failed', errno: err.code ?? 'EIO' });
    });
    child.once('exit', (code, signal) => resolve({ kind: 'exited', code, signal }));
  });
}

function exitStatusOf(outcome: ChildOutcome): number {
  if (outcome.kind === 'spawn-failed') {
    if (outcome.errno === 'ENOENT') return EXIT_NOT_FOUND;
    if (outcome.errno === 'EACCES' || outcome.errno === 'ENOEXEC' || outcome.errno === 'EISDIR') return EXIT_NOT_EXECUTABLE;
    return EXIT_STAGE_NOT_OPENED;
  }
  if (outcome.signal) return 128 + (osConstants.signals[outcome.signal] ?? 0);
  return outcome.code ?? 1;
}
