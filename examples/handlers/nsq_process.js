// nsq_process.js - write an nsq-worker --process handler in Node.js, no dependencies.
//
//   const nsq = require('./nsq_process');
//   nsq.run(async (message) => {
//     // message.body (Buffer), .id, .attempts, .timestamp (ns, a BigInt), .topic, .channel
//     if (message.body.length === 0) throw new nsq.Requeue(5000); // REQ after 5 s
//     return message.body.toString().toUpperCase();                // FIN with output
//   });
//
// and run it with `nsq-worker ... --process='node my_handler.js'`.
//
// The handler may be async: up to --process-window messages are in flight
// at once, each answered when its promise settles (in any order). It
// returns nothing (FIN), a Buffer or a string (FIN with that output, for
// --publish-topic), or throws: Requeue(delayMs) asks for a REQ after that
// delay, any other error is printed to stderr (the worker logs it) and
// means REQ with the worker's own delay. message.touch() resets the
// message's timeout during long work. At the end of its input (the worker
// is shutting down) the process answers what it holds and exits.
//
// Protocol version 1 (README, "Handlers in any language"): one JSON header
// line plus exactly "size" bytes of body each way.
'use strict';

class Requeue extends Error {
  constructor(delayMs) {
    super(delayMs === undefined ? 'requeue' : `requeue after ${delayMs} ms`);
    this.delayMs = delayMs;
  }
}

function header(fields) {
  return Buffer.from(JSON.stringify(fields) + '\n');
}

function reply(id, output) {
  if (output === undefined || output === null) return header({id, op: 'fin'});
  const body = Buffer.isBuffer(output) ? output : Buffer.from(String(output));
  if (body.length === 0) return header({id, op: 'fin'});
  return Buffer.concat([header({id, op: 'fin', size: body.length}), body]);
}

function requeue(id, error) {
  if (error instanceof Requeue && error.delayMs !== undefined)
    return header({id, op: 'req', delay_ms: Math.max(0, Math.floor(error.delayMs))});
  if (!(error instanceof Requeue)) console.error(error && error.stack ? error.stack : error);
  return header({id, op: 'req'});
}

function run(handle) {
  console.log = console.error; // stdout belongs to the protocol
  let buffer = Buffer.alloc(0);
  let holding = 0;
  let ended = false;
  const send = (data) => process.stdout.write(data);
  const settle = () => {
    holding--;
    if (ended && holding === 0) process.stdout.end();
  };
  const take = () => {
    for (;;) {
      const newline = buffer.indexOf(10);
      if (newline < 0) return;
      const text = buffer.subarray(0, newline).toString('utf8');
      const head = JSON.parse(text);
      const end = newline + 1 + head.size;
      if (buffer.length < end) return;
      const message = {
        // ns since the epoch do not fit a double: read the digits themselves
        id: head.id, attempts: head.attempts, timestamp: BigInt(/"timestamp":(\d+)/.exec(text)[1]),
        topic: head.topic, channel: head.channel,
        body: Buffer.from(buffer.subarray(newline + 1, end)),
        touch: () => send(header({id: head.id, op: 'touch'})),
      };
      buffer = buffer.subarray(end);
      holding++;
      Promise.resolve()
        .then(() => handle(message))
        .then((output) => send(reply(message.id, output)),
              (error) => send(requeue(message.id, error)))
        .finally(settle);
    }
  };
  process.stdin.on('data', (chunk) => {
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    take();
  });
  process.stdin.on('end', () => {
    ended = true;
    if (holding === 0) process.stdout.end();
  });
}

module.exports = {run, Requeue};

if (require.main === module) run(() => undefined); // FINs everything: `node nsq_process.js`
