// What nodemailer reports when the server refuses a message.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const nodemailer = require('nodemailer');
const { startEmulator } = require('../emulator');

const message = {
  from: 'app@example.com',
  to: 'user@tenant.example',
  subject: 'test',
  text: 'Hello.',
};

// nodemailer upgrades to STARTTLS whenever it is offered, and checks the
// certificate: trust the test CA (certs/README.md). The server certificate
// names localhost.
const ca = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'certs', 'ca.pem'));

function transport(emu, extra = {}) {
  return nodemailer.createTransport({
    host: emu.host,
    port: emu.port,
    tls: { ca, servername: 'localhost' },
    ...extra,
  });
}

test('ip-allowlist: the recipient is refused with 550 5.7.51', async (t) => {
  const emu = await startEmulator('--scenario', 'ip-allowlist');
  t.after(() => emu.stop());
  await assert.rejects(transport(emu).sendMail(message), (err) => {
    assert.strictEqual(err.code, 'EENVELOPE');
    assert.strictEqual(err.responseCode, 550);
    assert.match(err.response, /^550 5\.7\.51 TenantInboundAttribution; Rejecting\./);
    assert.deepStrictEqual(err.rejected, ['user@tenant.example']);
    return true;
  });
});

test('ip-allowlist style=eof: the connection closes before the greeting', async (t) => {
  const emu = await startEmulator('--scenario', 'ip-allowlist', '--set', 'style=eof');
  t.after(() => emu.stop());
  await assert.rejects(transport(emu).sendMail(message), (err) => {
    assert.strictEqual(err.code, 'ECONNECTION');
    assert.match(err.message, /Connection closed unexpectedly/);
    return true;
  });
});

test('the default scenario accepts the mail over STARTTLS', async (t) => {
  const emu = await startEmulator();
  t.after(() => emu.stop());
  const info = await transport(emu, { requireTLS: true }).sendMail(message);
  assert.match(info.response, /^250 2\.0\.0 Ok: queued as \w+$/);
});
