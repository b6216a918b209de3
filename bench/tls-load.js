// bench/tls-load.js: STARTTLS session load generator. Each session:
// greeting, EHLO, STARTTLS, TLS 1.3 handshake, EHLO, QUIT. Usage:
//   node tls-load.js HOST PORT SESSIONS CONCURRENCY
'use strict';
const net = require('net');
const tls = require('tls');

const [host, port, total, conc] = [process.argv[2], +process.argv[3],
  +process.argv[4], +process.argv[5]];
let started = 0, done = 0, failed = 0;

// Resolve once a complete reply (last line "CODE text") has arrived.
function reply(sock) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d.toString('latin1');
      const lines = buf.split('\r\n');
      for (const l of lines) {
        if (/^\d{3} /.test(l)) {
          sock.removeListener('data', onData);
          sock.removeListener('error', reject);
          return resolve(l);
        }
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
}

async function session() {
  const plain = net.connect(port, host);
  plain.setNoDelay(true);
  await reply(plain);
  plain.write('EHLO bench.example\r\n');
  await reply(plain);
  plain.write('STARTTLS\r\n');
  const r = await reply(plain);
  if (!r.startsWith('220')) throw new Error('STARTTLS refused: ' + r);
  const s = tls.connect({ socket: plain, rejectUnauthorized: false,
    minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', servername: 'localhost' });
  await new Promise((res, rej) => { s.once('secureConnect', res); s.once('error', rej); });
  s.write('EHLO bench.example\r\n');
  await reply(s);
  s.write('QUIT\r\n');
  await reply(s);
  s.end();
  plain.destroy();
}

function next() {
  if (started >= total) return;
  started++;
  session().then(() => { done++; }, () => { failed++; }).then(() => {
    if (done + failed === total) {
      console.log(JSON.stringify({ done, failed }));
      process.exit(failed ? 1 : 0);
    }
    next();
  });
}
for (let i = 0; i < conc; i++) next();
