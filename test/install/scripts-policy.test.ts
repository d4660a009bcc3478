import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStagegateError } from '../../sdk/errors';
import { detectPackageManager, detectYarnFlavor, findInstalledVersions, parseAllowScriptsEntry, planScriptsPolicy } from '../../sdk/install';

describe('detectPackageManager', () => {
  const cases: [string, string[], string, string[]][] = [
    ['npm', ['ci'], 'npm', ['npm']],
    ['/usr/bin/npm', ['install'], 'npm', ['/usr/bin/npm']],
    ['C:\\nodejs\\npm.cmd', ['ci'], 'npm', ['C:\\nodejs\\npm.cmd']],
    ['pnpm', ['install', '--frozen-lockfile'], 'pnpm', ['pnpm']],
    ['yarn', ['install'], 'yarn', ['yarn']],
    ['yarnpkg', [], 'yarn', ['yarnpkg']],
    ['corepack', ['pnpm', 'install'], 'pnpm', ['corepack', 'pnpm']],
    ['corepack', ['yarn', 'install'], 'yarn', ['corepack', 'yarn']],
    ['node', ['/usr/lib/node_modules/npm/bin/npm-cli.js', 'ci'], 'npm', ['node', '/usr/lib/node_modules/npm/bin/npm-cli.js']],
    ['npx', ['some-pkg'], 'unknown', []],
    ['make', ['install'], 'unknown', []],
    ['node', ['script.js'], 'unknown', []],
  ];
  it.each(cases)('%s %j is %s', (command, args, manager, invocation) => {
    expect(detectPackageManager(command, args)).toEqual({ manager, invocation });
  });
});

describe('detectYarnFlavor', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sg-yarn-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is classic with no hint', () => expect(detectYarnFlavor(dir)).toBe('classic'));
  it('is berry with packageManager yarn@4', () => {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ packageManager: 'yarn@4.5.0' }));
    expect(detectYarnFlavor(dir)).toBe('berry');
  });
  it('is classic with packageManager yarn@1', () => {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ packageManager: 'yarn@1.22.22' }));
    writeFileSync(join(dir, '.yarnrc.yml'), '');
    expect(detectYarnFlavor(dir)).toBe('classic');
  });
  it('is berry with a .yarnrc.yml', () => {
    writeFileSync(join(dir, '.yarnrc.yml'), 'nodeLinker: node-modules\n');
    expect(detectYarnFlavor(dir)).toBe('berry');
  });
});

describe('parseAllowScriptsEntry', () => {
  it.each([
    ['esbuild@0.21.5', { name: 'esbuild', version: '0.21.5' }],
    ['@scope/pkg@1.2.3', { name: '@scope/pkg', version: '1.2.3' }],
    ['pkg@1.0.0-rc.1', { name: 'pkg', version: '1.0.0-rc.1' }],
  ])('parses %s', (entry, parsed) => expect(parseAllowScriptsEntry(entry)).toEqual(parsed));

  it.each(['esbuild', 'esbuild@^0.21.5', 'esbuild@latest', 'esbuild@*', '@scope/pkg', 'a@1.2', '../x@1.0.0', 'pkg@1.0.0 || 2.0.0'])(
    'rejects %s with INVALID_REQUEST',
    (entry) => {
      let thrown: unknown;
      try {
        parseAllowScriptsEntry(entry);
      } catch (err) {
        thrown = err;
      }
      expect(isStagegateError(thrown, 'INVALID_REQUEST')).toBe(true);
    },
  );
});

describe('planScriptsPolicy', () => {
  const esbuild = { name: 'esbuild', version: '0.21.5' };

  it('npm: --ignore-scripts before any "--", env too, and npm rebuild name@version with scripts on', () => {
    const plan = planScriptsPolicy({ manager: 'npm', invocation: ['npm'], args: ['exec', 'x', '--', '--flag'], allowScripts: [esbuild] });
    expect(plan.installArgs).toEqual(['exec', 'x', '--ignore-scripts', '--', '--flag']);
    expect(plan.setEnv).toEqual({ npm_config_ignore_scripts: 'true', YARN_ENABLE_SCRIPTS: 'false' });
    expect(plan.disabledBy).toEqual(['--ignore-scripts', 'env npm_config_ignore_scripts=true', 'env YARN_ENABLE_SCRIPTS=false']);
    expect(plan.rebuildSteps).toEqual([
      { entry: esbuild, command: 'npm', args: ['rebuild', 'esbuild@0.21.5', '--ignore-scripts=false'], setEnv: plan.setEnv },
    ]);
  });

  it('pnpm via corepack: --ignore-scripts, rebuild through the same invocation', () => {
    const plan = planScriptsPolicy({ manager: 'pnpm', invocation: ['corepack', 'pnpm'], args: ['install'], allowScripts: [esbuild] });
    expect(plan.installArgs).toEqual(['install', '--ignore-scripts']);
    expect(plan.rebuildSteps[0]).toMatchObject({ command: 'corepack', args: ['pnpm', 'rebuild', 'esbuild', '--config.ignore-scripts=false'] });
  });

  it('yarn berry: no flag (berry rejects unknown ones), YARN_ENABLE_SCRIPTS=false; rebuild with scripts on', () => {
    const plan = planScriptsPolicy({ manager: 'yarn', yarnFlavor: 'berry', invocation: ['yarn'], args: ['install', '--immutable'], allowScripts: [esbuild] });
    expect(plan.installArgs).toEqual(['install', '--immutable']);
    expect(plan.setEnv.YARN_ENABLE_SCRIPTS).toBe('false');
    expect(plan.rebuildSteps[0]).toMatchObject({ command: 'yarn', args: ['rebuild', 'esbuild'], setEnv: { YARN_ENABLE_SCRIPTS: 'true' } });
  });

  it('yarn classic: --ignore-scripts; npm rebuilds (yarn 1 has no rebuild)', () => {
    const plan = planScriptsPolicy({ manager: 'yarn', yarnFlavor: 'classic', invocation: ['yarn'], args: ['install', '--frozen-lockfile'], allowScripts: [esbuild] });
    expect(plan.installArgs).toEqual(['install', '--frozen-lockfile', '--ignore-scripts']);
    expect(plan.rebuildSteps[0]).toMatchObject({ command: 'npm', args: ['rebuild', 'esbuild@0.21.5', '--ignore-scripts=false'] });
  });

  it('unknown command: environment settings only, and no allow-list', () => {
    expect(planScriptsPolicy({ manager: 'unknown', invocation: [], args: ['install'], allowScripts: [] })).toMatchObject({
      installArgs: ['install'],
      disabledBy: ['env npm_config_ignore_scripts=true', 'env YARN_ENABLE_SCRIPTS=false'],
    });
    expect(() => planScriptsPolicy({ manager: 'unknown', invocation: [], args: [], allowScripts: [esbuild] })).toThrow(
      expect.objectContaining({ code: 'INVALID_REQUEST' }),
    );
  });

  it.each(['--no-ignore-scripts', '--ignore-scripts=false', '--dangerously-allow-all-scripts', '--allow-scripts=esbuild', '--enable-scripts'])(
    'rejects %s in the install arguments',
    (arg) => {
      expect(() => planScriptsPolicy({ manager: 'npm', invocation: ['npm'], args: ['ci', arg], allowScripts: [] })).toThrow(
        expect.objectContaining({ code: 'INVALID_REQUEST' }),
      );
    },
  );

  it('does not look past "--" (those arguments belong to another program)', () => {
    expect(planScriptsPolicy({ manager: 'npm', invocation: ['npm'], args: ['exec', 'x', '--', '--no-ignore-scripts'], allowScripts: [] }).installArgs).toEqual([
      'exec',
      'x',
      '--ignore-scripts',
      '--',
      '--no-ignore-scripts',
    ]);
  });
});

describe('findInstalledVersions', () => {
  let dir: string;
  const pkg = (path: string, name: string, version: string): void => {
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'package.json'), JSON.stringify({ name, version }));
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sg-find-'));
    pkg(join(dir, 'node_modules', 'esbuild'), 'esbuild', '0.21.5');
    pkg(join(dir, 'node_modules', 'vite', 'node_modules', 'esbuild'), 'esbuild', '0.19.0');
    pkg(join(dir, 'node_modules', '@scope', 'tool', 'node_modules', 'esbuild'), 'esbuild', '0.18.0');
    pkg(join(dir, 'node_modules', '.pnpm', 'esbuild@0.17.0', 'node_modules', 'esbuild'), 'esbuild', '0.17.0');
    pkg(join(dir, 'node_modules', 'impostor'), 'not-esbuild', '9.9.9');
    symlinkSync(join(dir, 'node_modules'), join(dir, 'node_modules', 'vite', 'node_modules', 'loop'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds every nested and pnpm-store version, and survives a symlink loop', () => {
    expect(findInstalledVersions(dir, 'esbuild')).toEqual(['0.17.0', '0.18.0', '0.19.0', '0.21.5']);
    expect(findInstalledVersions(dir, 'nothing-here')).toEqual([]);
  });
});
