/**
 * docs/openapi.json, generated from the zod schemas the broker validates requests with
 * and the response schemas of api-schemas.ts (`npm run schema`; a test keeps the
 * committed file in step).
 */
import { z } from 'zod';
import { ERROR_CODES, httpStatusFor } from '../../sdk/errors';
import { closeResponse, errorResponse, heartbeatResponse, openedStageResponse, stageResponse } from './api-schemas';
import { closeStageBodySchema, openStageBodySchema } from './request-schemas';

const json = (schema: z.ZodType, io: 'input' | 'output' = 'output') => ({
  'application/json': { schema: z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) },
});

function errors(...codes: Array<(typeof ERROR_CODES)[number]>) {
  const byStatus = new Map<number, string[]>();
  for (const c of codes) byStatus.set(httpStatusFor(c), [...(byStatus.get(httpStatusFor(c)) ?? []), c]);
  return Object.fromEntries([...byStatus].map(([status, cs]) => [String(status), { description: cs.join(', '), content: { $ref: '#/components/x-error' } }]));
}

export function openApiDocument(version: string): Record<string, unknown> {
  const stageId = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
  const doc = {
    openapi: '3.1.0',
    info: { title: 'stagegate broker API', version, description: 'See docs/api.md. Errors are {"error":{"code","message","details"}} with a closed set of codes.' },
    components: {
      securitySchemes: {
        identityToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A workload identity token (CI OIDC JWT, Kubernetes service-account token).' },
        stageToken: { type: 'http', scheme: 'bearer', description: 'The stageToken returned by POST /v1/stages.' },
      },
      'x-error': json(errorResponse),
      'x-error-codes': Object.fromEntries(ERROR_CODES.map((c) => [c, httpStatusFor(c)])),
    },
    paths: {
      '/v1/stages': {
        post: {
          summary: 'Open a stage: verify identity, policy, install lock and provenance, then issue every grant',
          security: [{ identityToken: [] }],
          requestBody: { required: true, content: json(openStageBodySchema, 'input') },
          responses: {
            '201': { description: 'Stage open; credentials issued', content: json(openedStageResponse) },
            ...errors('INVALID_REQUEST', 'UNAUTHENTICATED', 'POLICY_DENIED', 'PROVENANCE_FAILED', 'INSTALL_PHASE_OPEN', 'INSTALL_PHASE_REQUIRED', 'STAGE_ALREADY_RAN', 'RUN_STAGE_OPEN', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'PROVIDER_REJECTED', 'PROVIDER_UNAVAILABLE'),
          },
        },
      },
      '/v1/stages/{id}/heartbeat': {
        post: {
          summary: 'Keep the stage open (extends it up to its max TTL) and receive refreshed credentials',
          security: [{ stageToken: [] }],
          parameters: [stageId],
          responses: { '200': { description: 'Extended', content: json(heartbeatResponse) }, ...errors('UNAUTHENTICATED', 'STAGE_NOT_FOUND', 'STAGE_CLOSED') },
        },
      },
      '/v1/stages/{id}': {
        get: {
          summary: 'State of a stage and its grants (stage token or an admin token)',
          security: [{ stageToken: [] }],
          parameters: [stageId],
          responses: { '200': { description: 'Stage state', content: json(stageResponse) }, ...errors('UNAUTHENTICATED', 'STAGE_NOT_FOUND') },
        },
        delete: {
          summary: 'Close the stage and revoke every credential; idempotent',
          security: [{ stageToken: [] }],
          parameters: [stageId],
          requestBody: { required: false, content: json(closeStageBodySchema, 'input') },
          responses: { '200': { description: 'Closed (or closing, with pending revocations)', content: json(closeResponse) }, ...errors('INVALID_REQUEST', 'UNAUTHENTICATED', 'STAGE_NOT_FOUND') },
        },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: '{"status":"ok"}' } } } },
      '/readyz': { get: { summary: 'Readiness: store and every provider', responses: { '200': { description: 'ready' }, '503': { description: 'not ready, with per-check codes' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text/plain exposition format' } } } },
    },
  };
  return doc;
}

if (require.main === module) {
  const { version } = require('../../../package.json') as { version: string };
  process.stdout.write(`${JSON.stringify(openApiDocument(version), null, 2)}\n`);
}
