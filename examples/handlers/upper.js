// upper.js - an nsq-worker --process handler with the Node.js helper:
// answers each message with its body in upper case (the output, for
// --publish-topic), asynchronously, so a whole --process-window is in
// flight at once.
//
//   nsq-worker --topic=words --channel=shout --broker-address=127.0.0.1:4152 \
//       --process='node examples/handlers/upper.js' --publish-topic=shouted
'use strict';
const nsq = require('./nsq_process');

nsq.run(async (message) => message.body.toString('utf8').toUpperCase());
