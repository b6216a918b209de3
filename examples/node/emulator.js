// Runs smtp-emulator for a test: started on a free port (port 0, read back
// from its "listening smtp HOST:PORT" line) and stopped with SIGTERM.
// The binary is $SMTP_EMULATOR_BIN, else smtp-emulator on PATH.
'use strict';

const { spawn } = require('node:child_process');
const readline = require('node:readline');

async function startEmulator(...options) {
  const bin = process.env.SMTP_EMULATOR_BIN || 'smtp-emulator';
  const child = spawn(bin, ['--hostname', 'mx.test', '--listen', '127.0.0.1:0', ...options], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^listening smtp .*:(\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    child.once('error', reject);
    exited.then(({ code }) => reject(new Error(`smtp-emulator exited with status ${code}`)));
  });
  return {
    host: '127.0.0.1',
    port,
    async stop() {
      child.kill('SIGTERM');
      const { code } = await exited;
      if (code !== 0) throw new Error(`smtp-emulator exited with status ${code}`);
    },
  };
}

module.exports = { startEmulator };
