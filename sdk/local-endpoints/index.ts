/** The local credential endpoints served to a stage process (see docs/cli.md, "Delivery"). */
export * from './server';
export * from './stage-gate';
export * from './process-tree';
export * from './aws-container-credentials';
export * from './gce-metadata';
export * from './vault-proxy';
export * from './stage-files';
export * from './delivery-env';
