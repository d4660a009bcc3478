import { z } from 'zod';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * A duration in config: a whole number of seconds, or a string like `90s`, `15m`, `1h`,
 * `1h30m`. Parsed to seconds.
 */
export const durationSchema = z.union([z.number().int().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const trimmed = value.trim();
  if (!/^(\d+[smhd])+$/.test(trimmed)) {
    ctx.addIssue({ code: 'custom', message: `not a duration: use seconds or forms like 90s, 15m, 1h30m` });
    return z.NEVER;
  }
  let total = 0;
  for (const [, n, unit] of trimmed.matchAll(/(\d+)([smhd])/g)) total += Number(n) * UNIT_SECONDS[unit!]!;
  if (total <= 0) {
    ctx.addIssue({ code: 'custom', message: 'duration must be positive' });
    return z.NEVER;
  }
  return total;
});
