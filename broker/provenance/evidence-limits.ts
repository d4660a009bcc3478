import { StagegateError } from '../../sdk/errors';
import { MAX_EVIDENCE_ITEMS } from './evidence-schema';

/** Size and shape bounds on request evidence. */
export interface EvidenceLimits {
  /** Most items; default {@link MAX_EVIDENCE_ITEMS} (16). */
  readonly maxItems: number;
  /** Most bytes of one item as compact JSON; default 256 KiB. */
  readonly maxItemBytes: number;
  /** Most bytes of all items together as compact JSON; default 1 MiB. */
  readonly maxTotalBytes: number;
  /** Deepest nesting of arrays/objects inside one item (the item itself is depth 1); default 32. */
  readonly maxDepth: number;
}

export const DEFAULT_EVIDENCE_LIMITS: EvidenceLimits = {
  maxItems: MAX_EVIDENCE_ITEMS,
  maxItemBytes: 256 * 1024,
  maxTotalBytes: 1024 * 1024,
  maxDepth: 32,
};

/**
 * Nesting depth of a parsed JSON value, counted without recursion (a hostile body
 * must not be able to overflow the stack) and abandoned as soon as it passes `max`.
 * Returns `max + 1` for anything deeper than `max`.
 */
export function measureJsonDepth(value: unknown, max: number): number {
  let deepest = 0;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > deepest) deepest = depth;
    if (deepest > max) return max + 1;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child, depth: depth + 1 });
    }
  }
  return deepest;
}

/**
 * Bound the request's `evidence` value before it reaches zod or any verifier: count,
 * per-item and total size, nesting depth. The HTTP layer calls this with the parsed
 * (not yet validated) `body.evidence`; `undefined` (no evidence) passes.
 *
 * @throws StagegateError `PAYLOAD_TOO_LARGE` (413) for count and size,
 *   `INVALID_REQUEST` (400) for a non-array or too-deep item. Details name the limit
 *   and the item index, never content.
 */
export function checkEvidenceLimits(evidence: unknown, limits: EvidenceLimits = DEFAULT_EVIDENCE_LIMITS): void {
  if (evidence === undefined) return;
  if (!Array.isArray(evidence)) {
    throw new StagegateError('INVALID_REQUEST', 'evidence must be an array', { details: { path: 'evidence' } });
  }
  if (evidence.length > limits.maxItems) {
    throw new StagegateError('PAYLOAD_TOO_LARGE', `at most ${limits.maxItems} evidence items are accepted`, {
      details: { path: 'evidence', limit: 'evidence-count', max: limits.maxItems, actual: evidence.length },
    });
  }
  let total = 0;
  evidence.forEach((item: unknown, index) => {
    // Depth first: JSON.stringify of a very deep value would itself overflow the stack.
    if (measureJsonDepth(item, limits.maxDepth) > limits.maxDepth) {
      throw new StagegateError('INVALID_REQUEST', `evidence item ${index} is nested deeper than ${limits.maxDepth} levels`, {
        details: { path: `evidence[${index}]`, limit: 'evidence-depth', max: limits.maxDepth },
      });
    }
    const bytes = Buffer.byteLength(JSON.stringify(item) ?? '');
    if (bytes > limits.maxItemBytes) {
      throw new StagegateError('PAYLOAD_TOO_LARGE', `evidence item ${index} is larger than ${limits.maxItemBytes} bytes`, {
        details: { path: `evidence[${index}]`, limit: 'evidence-item-bytes', max: limits.maxItemBytes, actual: bytes },
      });
    }
    total += bytes;
    if (total > limits.maxTotalBytes) {
      throw new StagegateError('PAYLOAD_TOO_LARGE', `evidence is larger than ${limits.maxTotalBytes} bytes in total`, {
        details: { path: 'evidence', limit: 'evidence-total-bytes', max: limits.maxTotalBytes },
      });
    }
  });
}
