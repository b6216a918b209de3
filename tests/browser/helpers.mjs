// Helpers for the browser tests: start the real emulator on port 0, talk
// SMTP to it (plain and STARTTLS, with a client certificate), call its API.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import {fileURLToPath} from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EMU_BIN = process.env.EMU_BIN || path.join(REPO, 'build/smtp-emulator');

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

// Starts the emulator with its API; resolves once both listeners are up.
export function startEmulator(extraArgs = []) {
  const args = ['--listen', '127.0.0.1:0', '--api', '127.0.0.1:0', '--hostname', 'mx.test',
    '--seed', '1', ...extraArgs];
  const child = spawn(EMU_BIN, args, {stdio: ['ignore', 'pipe', 'pipe']});
  running.add(child);
  const log = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => log.push(d));
  return new Promise((resolve, reject) => {
    let out = '';
    let smtp = null;
    let api = null;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the emulator did not start in 10 s: ${out} ${log.join('')}`));
    }, 10000);
    child.on('exit', (code) => {
      running.delete(child);
      clearTimeout(timer);
      if (!api) reject(new Error(`the emulator exited (${code}): ${log.join('')}`));
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const s = /listening smtp (\S+):(\d+)/.exec(out);
      const a = /listening api (\S+):(\d+)/.exec(out);
      if (s) smtp = {host: s[1], port: Number(s[2])};
      if (a) api = `http://${a[1]}:${a[2]}`;
      if (smtp && api) {
        clearTimeout(timer);
        child.stdout.removeAllListeners('data');
        child.stdout.resume();
        resolve({
          smtp, api, log,
          stop: () => new Promise((res) => {
            if (child.exitCode !== null) return res();
            const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => { clearTimeout(kill); res(); });
            child.kill('SIGTERM');
          }),
        });
      }
    });
  });
}

// A call to the control API from the test itself (to compare with the page).
export async function apiCall(base, method, p, body, token) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(base + p, {method, headers,
    body: body === undefined ? undefined : JSON.stringify(body)});
  const buf = Buffer.from(await res.arrayBuffer());
  let json = null;
  if ((res.headers.get('content-type') || '').includes('json') && buf.length) {
    json = JSON.parse(buf.toString('utf8'));
  }
  return {status: res.status, json, bytes: buf};
}

// A minimal SMTP client: one reply per send(), multi-line replies joined.
export class Smtp {
  static async connect({host, port}) {
    const c = new Smtp();
    const sock = net.connect({host, port});
    await new Promise((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    c.localPort = sock.localPort;
    c.attach(sock);
    c.greeting = await c.reply();
    return c;
  }

  attach(sock) {
    this.sock = sock;
    this.buf = '';
    this.lines = [];
    this.queue = [];
    this.waiters = [];
    sock.setEncoding('utf8');
    sock.on('data', (d) => this.onData(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      for (const w of this.waiters.splice(0)) w.reject(new Error('connection closed'));
    });
  }

  onData(d) {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.lines.push(line);
      if (/^\d{3}( |$)/.test(line)) {
        const r = {code: Number(line.slice(0, 3)), lines: this.lines, text: this.lines.join('\n')};
        this.lines = [];
        const w = this.waiters.shift();
        if (w) w.resolve(r);
        else this.queue.push(r);
      }
    }
  }

  reply(timeoutMs = 5000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no SMTP reply in time')), timeoutMs);
      this.waiters.push({
        resolve: (r) => { clearTimeout(t); resolve(r); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
    });
  }

  async send(line) {
    this.sock.write(`${line}\r\n`);
    return this.reply();
  }

  // STARTTLS, then a TLS handshake with the given client certificate.
  async starttls({ca, cert, key}) {
    const r = await this.send('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.text}`);
    const plain = this.sock;
    plain.removeAllListeners('data');
    const secure = tls.connect({
      socket: plain, ca: fs.readFileSync(ca), cert: fs.readFileSync(cert),
      key: fs.readFileSync(key), servername: 'localhost',
    });
    await new Promise((res, rej) => {
      secure.once('secureConnect', res);
      secure.once('error', rej);
    });
    this.attach(secure);
    return secure.getProtocol();
  }

  async data(message) {
    const r = await this.send('DATA');
    if (r.code !== 354) throw new Error(`DATA refused: ${r.text}`);
    const body = message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
    this.sock.write(`${body}\r\n.\r\n`);
    return this.reply();
  }

  async quit() {
    try {
      await this.send('QUIT');
    } finally {
      this.sock.end();
    }
  }
}
