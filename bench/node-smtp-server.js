// bench/node-smtp-server.js: nodemailer's smtp-server with the same
// certificate, the TLS peer the benchmark compares against. Prints
// "listening smtp HOST:PORT" like the emulator.
'use strict';
const fs = require('fs');
const { SMTPServer } = require('smtp-server');

const [host, port, cert, key] = process.argv.slice(2);
const server = new SMTPServer({
  secure: false,
  key: fs.readFileSync(key),
  cert: fs.readFileSync(cert),
  minVersion: 'TLSv1.3',
  authOptional: true,
  disabledCommands: ['AUTH'],
  logger: false,
  onData(stream, session, cb) { stream.on('data', () => {}); stream.on('end', cb); },
});
server.listen(+port, host, () => {
  const a = server.server.address();
  console.log(`listening smtp ${a.address}:${a.port}`);
});
