import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configJsonSchema } from '../../broker/config/config-json-schema';

it('the shipped schema/config.schema.json is the one generated from the validating schema (run `npm run schema`)', () => {
  const shipped = JSON.parse(readFileSync(join(__dirname, '..', '..', 'schema', 'config.schema.json'), 'utf8'));
  expect(shipped).toEqual(configJsonSchema());
  expect(shipped.required).toEqual(expect.arrayContaining(['issuers', 'providers', 'rules']));
  expect(shipped.additionalProperties).toBe(false);
});
