/** Request bodies of API v1. Strict: unknown fields are an error, not ignored. */
import { z } from 'zod';
import { NAME } from '../config/config-schema';
import { MAX_ARTIFACTS, MAX_EVIDENCE_ITEMS } from '../provenance/evidence-schema';

export const openStageBodySchema = z
  .object({
    stage: z.string().regex(NAME, 'stage must be 1-63 characters of letters, digits, ., _ or -'),
    phase: z.enum(['run', 'install']).default('run'),
    evidence: z.array(z.record(z.string(), z.unknown())).max(MAX_EVIDENCE_ITEMS).default([]),
    artifacts: z
      .array(
        z
          .object({
            name: z.string().min(1).max(256).optional(),
            digest: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase sha256 hex digest') }).strict(),
          })
          .strict(),
      )
      .max(MAX_ARTIFACTS)
      .default([]),
  })
  .strict();

export const closeStageBodySchema = z
  .object({ exitCode: z.number().int().min(-255).max(255).nullable().optional() })
  .strict();

export const devCheckBodySchema = z.object({ value: z.string().min(1).max(4096) }).strict();

export const STAGE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
