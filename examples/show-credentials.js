#!/usr/bin/env node
// Demo stage command for `npm start`'s dev broker: gets AWS credentials the way any AWS
// SDK would (the default chain finds stagegate's local container-credentials endpoint),
// asks the dev provider whether they are live, and leaves the access key id in a file so
// you can ask again after the stage closed.
'use strict';
const { writeFileSync } = require('node:fs');
const { defaultProvider } = require('@aws-sdk/credential-provider-node');

const broker = process.env.STAGEGATE_DEMO_BROKER || 'http://127.0.0.1:8080';
const keyFile = process.env.STAGEGATE_DEMO_KEY_FILE || '/tmp/stagegate-demo-key';

async function check(value) {
  const res = await fetch(`${broker}/v1/dev/check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value }) });
  return (await res.json()).state;
}

(async () => {
  const creds = await defaultProvider()();
  console.log(`stage command: AWS SDK default chain got ${creds.accessKeyId} (expires ${creds.expiration && creds.expiration.toISOString()})`);
  console.log(`stage command: the dev provider says this credential is ${await check(creds.accessKeyId)}`);
  writeFileSync(keyFile, creds.accessKeyId);
  console.log(`stage command: after the stage closes, check it again with:`);
  console.log(`  curl -s ${broker}/v1/dev/check -H 'content-type: application/json' -d "{\\"value\\":\\"$(cat ${keyFile})\\"}"`);
})().catch((err) => {
  console.error(`stage command failed: ${err.name}: ${err.message}`);
  process.exit(1);
});
