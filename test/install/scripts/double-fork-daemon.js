'use strict';
// A command that leaves a daemon behind, the way a hostile postinstall would:
// stage 0 starts stage 1 and exits once the daemon is up; stage 1 starts stage 2 in a new
// session (setsid) and exits, so stage 2 is re-parented away from the install; stage 2
// ignores SIGHUP/SIGTERM and lives on (at most LIFETIME_MS, so a failed test cannot leak
// a process forever). Usage: node double-fork-daemon.js 0 PIDFILE [--clear-env] [--respawn]
//   --clear-env  stage 2 starts with an empty environment (no marker to find)
//   --respawn    stage 2 forks a new copy of itself every 20 ms (races the killer)
const { spawn } = require('node:child_process');
const fs = require('node:fs');

const LIFETIME_MS = 60_000;
const [stage, pidfile, ...flags] = process.argv.slice(2);
const clearEnv = flags.includes('--clear-env');
const respawn = flags.includes('--respawn');

function start(nextStage, detached, env) {
  const child = spawn(process.execPath, [__filename, nextStage, pidfile, ...flags], { detached, stdio: 'ignore', env });
  child.unref();
  return child;
}

if (stage === '0') {
  start('1', false, process.env);
  const until = Date.now() + 10_000;
  const wait = () => {
    if (fs.existsSync(pidfile) && fs.readFileSync(pidfile, 'utf8').trim() !== '') process.exit(0);
    if (Date.now() > until) process.exit(2);
    setTimeout(wait, 10);
  };
  wait();
} else if (stage === '1') {
  start('2', true, clearEnv ? {} : process.env);
  process.exit(0);
} else {
  process.on('SIGHUP', () => {});
  process.on('SIGTERM', () => {});
  fs.appendFileSync(pidfile, `${process.pid}\n`);
  if (respawn) setInterval(() => start('3', true, clearEnv ? {} : process.env), 20).unref();
  setTimeout(() => process.exit(0), LIFETIME_MS);
  setInterval(() => {}, 1000);
}
