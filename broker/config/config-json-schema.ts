/**
 * The JSON Schema of the broker config, generated from the same zod schema the broker
 * validates with (so editors and CI linters see exactly what the broker accepts).
 * Provider sections and grant params are open here; each provider type checks them at
 * start. Written to `schema/config.schema.json` by `npm run schema`; a test keeps the
 * committed file in step.
 */
import { z } from 'zod';
import { configSchema } from './config-schema';

export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    ...schema,
    $id: 'https://stagegate.dev/schema/config.schema.json',
    title: 'stagegate broker configuration',
  };
}

if (require.main === module) {
  process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
}
