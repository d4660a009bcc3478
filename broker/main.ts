/**
 * `stagegate broker --config FILE`: load config (every mistake named), start, and shut
 * down cleanly on SIGTERM/SIGINT (closes in flight finish; pending revocations stay in
 * the store for the next start).
 */
import { parseArgs } from 'node:util';
import { isStagegateError } from '../sdk/errors';
import { loadConfigFile } from './config/load-config';
import { createLogger } from './logger';
import { startBroker } from './start-broker';

const USAGE = 'usage: stagegate broker --config FILE';

export async function main(argv: string[]): Promise<number> {
  let configPath: string | undefined;
  try {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    configPath = values.config;
  } catch (err) {
    process.stderr.write(`stagegate broker: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (!configPath) {
    process.stderr.write(`stagegate broker: --config is required\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfigFile(configPath);
  } catch (err) {
    process.stderr.write(`stagegate broker: ${isStagegateError(err) ? err.message : String(err)}\n`);
    return 78; // EX_CONFIG
  }
  const logger = createLogger({ level: config.raw.logging.level });
  const broker = await startBroker(config, { logger });
  await new Promise<void>((resolveStop) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ event: 'broker.stopping', signal }, 'stopping');
      resolveStop();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await broker.close();
  logger.flush?.();
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`stagegate broker: fatal: ${(err as Error)?.name ?? 'error'}: ${(err as Error)?.message ?? ''}\n`);
      process.exitCode = 1;
    },
  );
}
