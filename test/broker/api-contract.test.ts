/**
 * The API contract: real broker responses match the response schemas that
 * docs/openapi.json is generated from, and the SDK's own reader accepts the same
 * responses. docs/openapi.json must be regenerated (`npm run schema`) when they change.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import { closeResponse, errorResponse, heartbeatResponse, openedStageResponse, stageResponse } from '../../broker/http/api-schemas';
import { openApiDocument } from '../../broker/http/openapi';
import { closedSchema, heartbeatSchema, openedStageSchema, stageStateSchema } from '../../sdk/client';
import { safeParse, type Schema } from '../../sdk/response-schema';
import { call, startTestBroker, type TestBroker } from '../harness/broker';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb.close();
});

function expectShape(broker: z.ZodType, sdk: Schema<unknown> | undefined, body: unknown): void {
  const r = broker.safeParse(body);
  if (!r.success) throw new Error(`broker response breaks its schema: ${JSON.stringify(r.error.issues.map((i) => i.path.join('.')))}`);
  if (sdk) {
    const s = safeParse(sdk, body);
    if (!s.success) throw new Error(`the SDK cannot read a broker response: ${s.issues.join(', ')}`);
  }
}

it('open, heartbeat, get, close and errors match the documented schemas and the SDK reads them', async () => {
  const opened = await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(), body: { stage: 'deploy' } });
  expect(opened.status).toBe(201);
  expectShape(openedStageResponse, openedStageSchema as Schema<unknown>, opened.body);
  const auth = { token: opened.body.stageToken };
  const hb = await call(tb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, auth);
  expectShape(heartbeatResponse, heartbeatSchema as Schema<unknown>, hb.body);
  const state = await call(tb.url, 'GET', `/v1/stages/${opened.body.stageId}`, auth);
  expectShape(stageResponse, stageStateSchema as Schema<unknown>, state.body);
  const closed = await call(tb.url, 'DELETE', `/v1/stages/${opened.body.stageId}`, auth);
  expectShape(closeResponse, closedSchema as Schema<unknown>, closed.body);
  const after = await call(tb.url, 'GET', `/v1/stages/${opened.body.stageId}`, auth);
  expectShape(stageResponse, stageStateSchema as Schema<unknown>, after.body);
  for (const bad of [
    await call(tb.url, 'POST', '/v1/stages', { token: 'x', body: { stage: 'deploy' } }),
    await call(tb.url, 'POST', '/v1/stages', { token: await tb.mintToken(), body: { nope: 1 } }),
    await call(tb.url, 'POST', `/v1/stages/${opened.body.stageId}/heartbeat`, auth),
  ]) {
    expectShape(errorResponse, undefined, bad.body);
  }
  // a schema that rejects what the broker sends would make this test fail
  expect(openedStageResponse.safeParse({ ...opened.body, extra: 1 }).success).toBe(false);
});

it('docs/openapi.json is generated from these schemas (run `npm run schema`)', () => {
  const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const shipped = JSON.parse(readFileSync(join(__dirname, '..', '..', 'docs', 'openapi.json'), 'utf8'));
  expect(shipped).toEqual(openApiDocument(version));
});
