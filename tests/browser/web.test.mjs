// Browser tests of the web page served by the control API: Debian's
// Chromium, headless, driven by playwright-core. The emulator is the real
// binary on port 0; SMTP clients are real sockets (helpers.mjs).
//
//   EMU_BIN         the binary (default: build/smtp-emulator)
//   CHROMIUM        the browser (default: /usr/bin/chromium)
//   WEB_SCREENSHOT  where to save a screenshot of the page
//                   (default: build/browser/web-screenshot.png)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {after, before, test} from 'node:test';

import {chromium} from 'playwright-core';

import {REPO, Smtp, apiCall, startEmulator} from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.WEB_SCREENSHOT ||
  path.join(REPO, 'build/browser/web-screenshot.png');
const CERTS = path.join(REPO, 'certs');
const WAIT = {timeout: 8000};

let emu;
let context;
let page;
let userDataDir;
const pageErrors = [];

function watch(p) {
  p.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  p.on('console', (m) => {
    // Expected refusals (400, 401) are logged by Chromium as failed loads.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) {
      pageErrors.push(`console: ${m.text()}`);
    }
  });
}

before(async () => {
  emu = await startEmulator();
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smtp-emulator-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
    viewport: {width: 1440, height: 900},
    acceptDownloads: true,
  });
  context.setDefaultTimeout(8000);
  page = context.pages()[0] || await context.newPage();
  watch(page);
});

after(async () => {
  if (context) await context.close();
  if (emu) await emu.stop();
  if (userDataDir) fs.rmSync(userDataDir, {recursive: true, force: true});
});

// The session of a client, found by its source port.
async function sessionOf(base, client, token) {
  const r = await apiCall(base, 'GET', '/api/v1/sessions?limit=50', undefined, token);
  const s = r.json.find((x) => x.client.port === client.localPort);
  assert.ok(s, `no session for client port ${client.localPort}`);
  return s;
}

async function waitForEnd(base, client, token) {
  for (let i = 0; i < 50; i++) {
    const s = await sessionOf(base, client, token);
    if (s.outcome.result !== 'active') return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the session did not end');
}

const row = (id) => page.locator(`#sessions-rows tr[data-id="${id}"]`);

let refused; // the session refused by ip-allowlist
let delivered; // the TLS session that delivered a message
let messageId;

test('the page loads and shows the active scenario', async () => {
  await page.goto(`${emu.api}/`);
  await page.locator('#conn-status', {hasText: 'Connected'}).waitFor(WAIT);
  assert.equal(await page.textContent('#active-scenario-name'), 'accept');
  const names = await page.$$eval('#scenario-select option', (o) => o.map((x) => x.value));
  for (const n of ['accept', 'ip-allowlist', 'greylisting', 'spam-policy', 'abrupt-eof']) {
    assert.ok(names.includes(n), `scenario ${n} offered`);
  }
  assert.equal(await page.title(), 'smtp-emulator');
});

test('an invalid parameter shows the API error and changes nothing', async () => {
  const bad = {name: 'ip-allowlist', params: {allow: 'not-a-cidr'}};
  const direct = await apiCall(emu.api, 'PUT', '/api/v1/scenario', bad);
  assert.equal(direct.status, 400);
  const expected = direct.json.error;
  assert.match(expected, /allow/);

  await page.selectOption('#scenario-select', 'ip-allowlist');
  await page.fill('#param-allow', 'not-a-cidr');
  await page.click('#btn-apply-scenario');
  const err = page.locator('#scenario-error');
  await err.waitFor({state: 'visible', ...WAIT});
  assert.ok((await err.textContent()).includes(expected), await err.textContent());
  assert.equal(await err.getAttribute('role'), 'alert');
  assert.equal(await page.getAttribute('#param-allow', 'aria-invalid'), 'true');
  assert.equal(await page.textContent('#active-scenario-name'), 'accept');
  const cur = await apiCall(emu.api, 'GET', '/api/v1/scenario');
  assert.deepEqual(cur.json, {name: 'accept', params: {}});
});

test('the scenario is switched through the form', async () => {
  await page.fill('#param-allow', '');
  await page.selectOption('#param-style', 'postfix');
  await page.click('#btn-apply-scenario');
  await page.locator('#active-scenario-params', {hasText: 'style=postfix'}).waitFor(WAIT);
  assert.equal(await page.textContent('#active-scenario-name'), 'ip-allowlist');
  assert.ok(await page.locator('#scenario-error').isHidden());
  const cur = await apiCall(emu.api, 'GET', '/api/v1/scenario');
  assert.deepEqual(cur.json, {name: 'ip-allowlist', params: {style: 'postfix'}});
});

test('a refused session appears without reload, with its reply code', async () => {
  await page.evaluate(() => { window.notReloaded = true; });
  const c = await Smtp.connect(emu.smtp);
  assert.equal(c.greeting.code, 220);
  assert.equal((await c.send('EHLO browser.test')).code, 250);
  assert.equal((await c.send('MAIL FROM:<qa@example.com>')).code, 250);
  const rcpt = await c.send('RCPT TO:<user@example.org>');
  assert.equal(rcpt.code, 554);
  await c.quit();
  refused = await waitForEnd(emu.api, c);
  assert.equal(refused.outcome.code, 554);

  const r = row(refused.id);
  await r.locator('td.code', {hasText: '554'}).waitFor(WAIT);
  const cells = await r.locator('td').allTextContents();
  assert.match(cells[0], new RegExp(`^#${refused.id}\\d\\d:\\d\\d:\\d\\d$`));
  assert.match(cells[1], /^127\.0\.0\.1/);
  assert.equal(cells[2], 'ip-allowlist');
  assert.equal(cells[3], 'rejected');
  assert.equal(cells[4], '554');
  assert.equal(cells[5], 'rcpt');
  assert.equal(await page.evaluate(() => window.notReloaded), true);
  await page.locator('#sessions-live', {hasText: `session ${refused.id}`}).waitFor(WAIT);
  assert.match(await page.textContent('#sessions-live'), /554/);

  // Filters: by outcome, by text.
  await page.selectOption('#filter-outcome', 'delivered');
  assert.ok(await r.isHidden());
  await page.selectOption('#filter-outcome', 'rejected');
  assert.ok(await r.isVisible());
  await page.fill('#filter-text', 'browser.test');
  assert.ok(await r.isVisible());
  await page.fill('#filter-text', 'no-such-client');
  assert.ok(await r.isHidden());
  assert.match(await page.textContent('#sessions-count'), /Showing 0 of/);
  await page.fill('#filter-text', '');
  await page.selectOption('#filter-outcome', '');
  assert.ok(await r.isVisible());
});

test('the transcript shows client and server lines and where the scenario acted', async () => {
  // Keyboard: the row's button opens the transcript and moves focus there.
  await page.focus(`#sessions-rows button[data-session="${refused.id}"]`);
  await page.keyboard.press('Enter');
  await page.locator('#detail-heading', {hasText: `Session #${refused.id}`}).waitFor(WAIT);
  await page.locator('ol.transcript').waitFor(WAIT);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'detail-heading');

  const client = await page.locator('ol.transcript li.client .text').allTextContents();
  const server = await page.locator('ol.transcript li.server .text').allTextContents();
  assert.deepEqual(client, ['EHLO browser.test', 'MAIL FROM:<qa@example.com>',
    'RCPT TO:<user@example.org>', 'QUIT']);
  assert.equal(server[0], '220 mx.test ESMTP smtp-emulator');
  assert.ok(server.includes('250 2.1.0 Ok'));
  const reject = '554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied';
  assert.ok(server.includes(reject), server.join('\n'));
  assert.equal(server[server.length - 1], '221 2.0.0 Bye');

  // The line where the scenario acted, and the stage.
  assert.equal(await page.textContent('ol.transcript li.acted .text'), reject);
  assert.match(await page.textContent('ol.transcript .acted-badge'), /stage rcpt/);
  const facts = await page.locator('#detail-body dl.facts').innerText();
  assert.match(facts, /Stage where the scenario acted\s+rcpt/);
  assert.match(facts, /Reply code\s+554/);
  assert.match(facts, /TLS\s+none/);

  // Client and server lines look different (colour and marker).
  const look = (sel) => page.$eval(sel, (el) => {
    const cs = getComputedStyle(el);
    return `${cs.backgroundColor}|${cs.color}|${cs.borderLeftColor}`;
  });
  const cl = await look('ol.transcript li.client');
  const sl = await look('ol.transcript li.server:not(.acted)');
  assert.notEqual(cl, sl);
  assert.equal(await page.textContent('ol.transcript li.client .dir'), 'C:');
  assert.equal(await page.textContent('ol.transcript li.server .dir'), 'S:');
});

test('back to accept: a TLS session delivers a message; headers, body and raw download', async () => {
  await page.selectOption('#scenario-select', 'accept');
  await page.click('#btn-apply-scenario');
  await page.locator('#active-scenario-name', {hasText: /^accept$/}).waitFor(WAIT);

  const c = await Smtp.connect(emu.smtp);
  await c.send('EHLO browser.test');
  const proto = await c.starttls({ca: path.join(CERTS, 'ca.pem'),
    cert: path.join(CERTS, 'client.pem'), key: path.join(CERTS, 'client.key')});
  assert.equal((await c.send('EHLO browser.test')).code, 250);
  // Markup in client text must be shown as text, never parsed.
  assert.equal((await c.send('NOOP <img src=x onerror="window.pwned=1">')).code, 250);
  assert.equal((await c.send('MAIL FROM:<qa@example.com>')).code, 250);
  assert.equal((await c.send('RCPT TO:<user@example.org>')).code, 250);
  const sent = [
    'From: QA <qa@example.com>',
    'To: <user@example.org>',
    // "Grüße from the browser test" as an RFC 2047 encoded word.
    `Subject: =?UTF-8?B?${Buffer.from('Grüße from the browser test').toString('base64')}?=`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Gr=C3=BC=C3=9Fe aus dem Browser-Test.',
    'Line two <b>not bold</b>.',
  ].join('\r\n');
  const done = await c.data(sent);
  assert.equal(done.code, 250);
  messageId = /queued as (\S+)/.exec(done.text)[1];
  await c.quit();
  delivered = await waitForEnd(emu.api, c);
  assert.equal(delivered.outcome.result, 'delivered');

  // The session, with its TLS and certificate facts.
  await row(delivered.id).locator('.badge', {hasText: 'delivered'}).waitFor(WAIT);
  await page.click(`#sessions-rows button[data-session="${delivered.id}"]`);
  await page.locator('#detail-heading', {hasText: `Session #${delivered.id}`}).waitFor(WAIT);
  const facts = await page.locator('#detail-body dl.facts').innerText();
  assert.ok(facts.includes(proto), facts);
  assert.match(facts, /Certificate subject\s+CN=mail\.example\.com/);
  assert.match(facts, /Certificate verified\s+yes/);
  assert.match(facts, /DNS:mail\.example\.com/);
  const client = await page.locator('ol.transcript li.client .text').allTextContents();
  assert.ok(client.includes('STARTTLS'));
  assert.ok(client.includes('NOOP <img src=x onerror="window.pwned=1">'), client.join('\n'));
  assert.equal(await page.locator('#detail-body img').count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.locator('ol.transcript li.acted').count(), 0);

  // The message: from the session's list, then from the messages list.
  await page.locator('#detail-body button', {hasText: messageId}).waitFor(WAIT);
  const m = page.locator(`#messages-rows tr[data-id="${messageId}"]`);
  await m.waitFor(WAIT);
  assert.match(await m.innerText(), /Grüße from the browser test/);
  await m.locator('button').click();
  await page.locator('#detail-heading', {hasText: `Message ${messageId}`}).waitFor(WAIT);
  const headers = await page.locator('#detail-body table.headers').innerText();
  assert.match(headers, /Subject\s+Grüße from the browser test/);
  assert.match(headers, /From\s+QA <qa@example.com>/);
  const body = await page.textContent('#detail-body pre.body-text');
  assert.ok(body.includes('Grüße aus dem Browser-Test.'), body);
  assert.ok(body.includes('Line two <b>not bold</b>.'), body);
  assert.equal(await page.locator('#detail-body b').count(), 0);
  assert.match(await page.locator('#detail-body dl.facts').innerText(), /TLS\s+yes/);

  // The raw download is the message's exact bytes.
  const raw = await apiCall(emu.api, 'GET', `/api/v1/messages/${messageId}/raw`);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('text=Download raw message'),
  ]);
  assert.equal(download.suggestedFilename(), `${messageId}.eml`);
  const got = fs.readFileSync(await download.path());
  assert.ok(got.equals(raw.bytes), 'downloaded bytes differ from /raw');
  // And it opens in the page.
  await page.click('.raw-box summary');
  assert.ok((await page.textContent('pre.raw')).includes('Gr=C3=BC=C3=9Fe aus dem Browser-Test.'));

  // A picture of the page for the README: the refused session's transcript,
  // and the form about to switch to ip-allowlist.
  await page.selectOption('#scenario-select', 'ip-allowlist');
  await page.selectOption('#param-style', 'postfix');
  await page.click(`#sessions-rows button[data-session="${refused.id}"]`);
  await page.locator('#detail-heading', {hasText: `Session #${refused.id}`}).waitFor(WAIT);
  await page.locator('ol.transcript li.acted').waitFor(WAIT);
  await page.evaluate(() => document.activeElement.blur());
  fs.mkdirSync(path.dirname(SCREENSHOT), {recursive: true});
  await page.screenshot({path: SCREENSHOT});
});

test('buttons: advance the clock, reset state, clear messages and sessions', async () => {
  await page.fill('#clock-advance', '300');
  await page.click('#btn-advance-clock');
  await page.locator('#clock-offset', {hasText: '(300 s)'}).waitFor(WAIT);
  assert.equal((await apiCall(emu.api, 'GET', '/api/v1/clock')).json.offset, 300);

  // A greylisted attempt leaves a triplet in the shared state.
  await apiCall(emu.api, 'PUT', '/api/v1/scenario', {name: 'greylisting', params: {}});
  const c = await Smtp.connect(emu.smtp);
  await c.send('EHLO browser.test');
  await c.send('MAIL FROM:<qa@example.com>');
  assert.equal((await c.send('RCPT TO:<user@example.org>')).code, 450);
  await c.quit();
  assert.ok((await apiCall(emu.api, 'GET', '/api/v1/state')).json.length > 0);
  await page.locator('#active-scenario-name', {hasText: 'greylisting'}).waitFor(WAIT);
  await page.locator('#state-count', {hasText: /^[1-9]\d* entr/}).waitFor(WAIT);
  await page.click('#btn-reset-state');
  await page.locator('#state-count', {hasText: '0 entries'}).waitFor(WAIT);
  assert.deepEqual((await apiCall(emu.api, 'GET', '/api/v1/state')).json, []);
  await page.locator('#action-status', {hasText: 'state reset'}).waitFor(WAIT);

  await page.click('#btn-clear-messages');
  await page.locator('#messages-count', {hasText: 'No messages'}).waitFor(WAIT);
  assert.deepEqual((await apiCall(emu.api, 'GET', '/api/v1/messages')).json, []);
  await page.click('#btn-clear-sessions');
  await page.locator('#sessions-count', {hasText: 'No sessions'}).waitFor(WAIT);
  assert.equal(await page.locator('#sessions-rows tr').count(), 0);
  assert.deepEqual((await apiCall(emu.api, 'GET', '/api/v1/sessions')).json, []);
  await apiCall(emu.api, 'PUT', '/api/v1/scenario', {name: 'accept', params: {}});
});

test('with --api-token the page asks for the token and sends it', async () => {
  const token = `qa-${Math.random().toString(36).slice(2)}`;
  const emu2 = await startEmulator(['--api-token', token]);
  const p = await context.newPage();
  watch(p);
  try {
    // The page's own files load without the token (a browser cannot send
    // one when it opens a URL); the API itself still needs it.
    assert.equal((await apiCall(emu2.api, 'GET', '/')).status, 200);
    assert.equal((await apiCall(emu2.api, 'GET', '/api/v1/scenario')).status, 401);
    await p.goto(`${emu2.api}/`);
    await p.locator('#conn-status', {hasText: 'needs a token'}).waitFor(WAIT);
    assert.ok(await p.evaluate(() => document.body.classList.contains('token-needed')));
    assert.equal(await p.evaluate(() => document.activeElement.id), 'token-input');

    await p.fill('#token-input', 'wrong-token');
    await p.press('#token-input', 'Enter');
    await p.locator('#conn-status', {hasText: 'refused the token'}).waitFor(WAIT);

    await p.fill('#token-input', token);
    await p.click('#btn-token-save');
    await p.locator('#conn-status', {hasText: 'Connected'}).waitFor(WAIT);
    assert.equal(await p.textContent('#active-scenario-name'), 'accept');
    assert.equal(await p.evaluate(() => sessionStorage.getItem('smtp-emulator.api-token')), token);
    assert.equal(await p.inputValue('#token-input'), '');

    // Writes carry the token too.
    await p.selectOption('#scenario-select', 'greylisting');
    await p.fill('#param-delay', '60');
    await p.click('#btn-apply-scenario');
    await p.locator('#active-scenario-params', {hasText: 'delay=60'}).waitFor(WAIT);
    const cur = await apiCall(emu2.api, 'GET', '/api/v1/scenario', undefined, token);
    assert.deepEqual(cur.json, {name: 'greylisting', params: {delay: '60'}});

    const c = await Smtp.connect(emu2.smtp);
    await c.send('EHLO token.test');
    await c.quit();
    const s = await waitForEnd(emu2.api, c, token);
    await p.locator(`#sessions-rows tr[data-id="${s.id}"]`).waitFor(WAIT);

    // A reload in the same tab keeps the token (sessionStorage).
    await p.reload();
    await p.locator(`#sessions-rows tr[data-id="${s.id}"]`).waitFor(WAIT);
    assert.equal(await p.textContent('#active-scenario-name'), 'greylisting');
  } finally {
    await p.close();
    await emu2.stop();
  }
});

test('the page raised no script errors', () => {
  assert.deepEqual(pageErrors, []);
});
