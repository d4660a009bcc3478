/** A pino logger whose JSON lines are kept in memory, so tests can scan them for secrets. */
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../broker/logger';

export interface CapturedLogger {
  readonly logger: Logger;
  text(): string;
  lines(): Array<Record<string, unknown>>;
}

export function createCapturedLogger(level = 'debug'): CapturedLogger {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level, destination: stream });
  return {
    logger,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
