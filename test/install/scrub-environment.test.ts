import { scrubEnvironment, secretReasonFor } from '../../sdk/install';

describe('scrubEnvironment', () => {
  const removedCases: [string, string][] = [
    ['AWS_ACCESS_KEY_ID', 'prefix AWS_'],
    ['AWS_SECRET_ACCESS_KEY', 'prefix AWS_'],
    ['AWS_CONTAINER_CREDENTIALS_FULL_URI', 'prefix AWS_'],
    ['AWS_CONTAINER_AUTHORIZATION_TOKEN', 'prefix AWS_'],
    ['GOOGLE_APPLICATION_CREDENTIALS', 'prefix GOOGLE_'],
    ['GCE_METADATA_HOST', 'prefix GCE_'],
    ['CLOUDSDK_AUTH_ACCESS_TOKEN_FILE', 'prefix CLOUDSDK_'],
    ['VAULT_TOKEN', 'prefix VAULT_'],
    ['VAULT_ADDR', 'prefix VAULT_'],
    ['ACTIONS_ID_TOKEN_REQUEST_URL', 'prefix ACTIONS_'],
    ['ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'prefix ACTIONS_'],
    ['ACTIONS_RUNTIME_TOKEN', 'prefix ACTIONS_'],
    ['STAGEGATE_IDENTITY_TOKEN_FILE', 'prefix STAGEGATE_'],
    ['STAGEGATE_BROKER_URL', 'prefix STAGEGATE_'],
    ['AZURE_CLIENT_SECRET', 'prefix AZURE_'],
    ['ARM_CLIENT_SECRET', 'prefix ARM_'],
    ['TF_VAR_db_password', 'prefix TF_VAR_'],
    ['NPM_TOKEN', 'name'],
    ['NODE_AUTH_TOKEN', 'name'],
    ['GITHUB_TOKEN', 'name'],
    ['GH_TOKEN', 'name'],
    ['CI_JOB_TOKEN', 'name'],
    ['CI_JOB_JWT_V2', 'name'],
    ['KUBECONFIG', 'name'],
    ['SSH_AUTH_SOCK', 'name'],
    ['GIT_ASKPASS', 'name'],
    ['DOCKER_CONFIG', 'name'],
    ['CIRCLE_OIDC_TOKEN_V2', 'word OIDC'],
    ['SLACK_WEBHOOK_SECRET', 'word SECRET'],
    ['DB_PASSWORD', 'word PASSWORD'],
    ['SONAR_CREDENTIALS', 'word CREDENTIALS'],
    ['HEROKU_API_KEY', 'last word KEY'],
    ['SSH_PRIVATE_KEY', 'last word KEY'],
    ['npm_config__auth', 'word AUTH'],
    ['npm_config_//registry.npmjs.org/:_authToken', 'word AUTH'],
    ['npm_config__password', 'word PASSWORD'],
    ['myServiceApiToken', 'word TOKEN'],
  ];
  it.each(removedCases)('removes %s (%s)', (name, reason) => {
    expect(secretReasonFor(name)).toBe(reason);
    const { env, removed } = scrubEnvironment({ [name]: 'v', PATH: '/bin' });
    expect(removed).toEqual([name]);
    expect(env).toEqual({ PATH: '/bin' });
  });

  const keptCases = ['PATH', 'HOME', 'PWD', 'USER', 'LANG', 'TERM', 'CI', 'NODE_ENV', 'NODE_OPTIONS', 'GITHUB_SHA', 'GITHUB_REPOSITORY', 'GIT_AUTHOR_NAME', 'npm_config_cache', 'KEYBOARD_LAYOUT', 'HTTPS_PROXY', 'TMPDIR'];
  it.each(keptCases)('keeps %s', (name) => {
    expect(secretReasonFor(name)).toBeUndefined();
    expect(scrubEnvironment({ [name]: 'v' })).toEqual({ env: { [name]: 'v' }, removed: [] });
  });

  it('keeps names on the keep-list, exactly or by prefix, and only those', () => {
    const { env, removed } = scrubEnvironment(
      { NPM_TOKEN: 'a', GITHUB_TOKEN: 'b', VAULT_ADDR: 'c', VAULT_TOKEN: 'd', npm_token: 'e' },
      ['NPM_TOKEN', 'VAULT_ADDR*'],
    );
    expect(env).toEqual({ NPM_TOKEN: 'a', VAULT_ADDR: 'c' });
    expect(removed).toEqual(['GITHUB_TOKEN', 'VAULT_TOKEN', 'npm_token']);
  });

  it('reports names only, sorted, never a value, and leaves the input untouched', () => {
    const input = { ZED_TOKEN: 'secret-zed-value', AWS_SECRET_ACCESS_KEY: 'secret-aws-value', PATH: '/bin', EMPTY: undefined };
    const copy = { ...input };
    const result = scrubEnvironment(input);
    expect(result.removed).toEqual(['AWS_SECRET_ACCESS_KEY', 'ZED_TOKEN']);
    expect(JSON.stringify(result)).not.toContain('secret-');
    expect(result.env).toEqual({ PATH: '/bin' });
    expect(input).toEqual(copy);
  });
});
