/**
 * The broker's pino logger. Redaction is set once, here, at creation: even if a secret
 * reached a log call by mistake, these paths are censored.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  'token',
  '*.token',
  'stageToken',
  '*.stageToken',
  'identityToken',
  '*.identityToken',
  'values',
  '*.values',
  'credentials[*].values',
  '*.credentials[*].values',
  'secret',
  '*.secret',
  'password',
  '*.password',
];

export function createLogger(options: { level?: string; destination?: DestinationStream; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'stagegate',
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination ?? pino.destination(2),
  );
}
