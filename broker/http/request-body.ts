/**
 * Reads a JSON request body with hard limits: size (413), media type (415), syntax and
 * nesting depth (400). Limits apply before any parsing work is spent on the body.
 */
import type { Context } from 'koa';
import getRawBody from 'raw-body';
import { StagegateError } from '../../sdk/errors';

/** Deepest JSON nesting accepted in any request body. */
export const MAX_JSON_DEPTH = 32;

/** Depth of a JSON text, found by scanning it (strings skipped) — no recursion, no parse. */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) max = depth;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

export async function readJsonBody(ctx: Context, limitBytes: number, options: { optional?: boolean } = {}): Promise<unknown> {
  const length = ctx.request.length;
  const hasBody = (length !== undefined && length > 0) || ctx.get('transfer-encoding') !== '';
  if (!hasBody) {
    if (options.optional) return undefined;
    throw new StagegateError('INVALID_REQUEST', 'a JSON body is required');
  }
  if (!ctx.is('application/json')) {
    throw new StagegateError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
  }
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit: limitBytes, length: length ?? undefined, encoding: 'utf8' });
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') {
      throw new StagegateError('PAYLOAD_TOO_LARGE', `the body exceeds ${limitBytes} bytes`, { details: { limitBytes } });
    }
    throw new StagegateError('INVALID_REQUEST', 'the body could not be read', { details: { reason: type ?? 'read-error' } });
  }
  if (text.trim() === '' && options.optional) return undefined;
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    throw new StagegateError('INVALID_REQUEST', `the body nests deeper than ${MAX_JSON_DEPTH} levels`, { details: { maxDepth: MAX_JSON_DEPTH } });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new StagegateError('INVALID_REQUEST', 'the body is not valid JSON');
  }
}
