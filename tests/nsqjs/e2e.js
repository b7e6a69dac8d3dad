// e2e.js - nsqjs 0.13 (a real NSQ client, unchanged) against a broker's NSQ
// TCP door: a Writer publishes with PUB and MPUB, a Reader consumes every
// message once and finishes it. Usage: node e2e.js HOST:PORT [SECRET]
// With SECRET both send nsqjs's authSecret (NSQ's AUTH) and must get the
// identity "nsqjs" back. Exit 0 when all arrived, 1 on an error or after
// 20 s.
'use strict';
const nsq = require('nsqjs');

const [host, port] = process.argv[2].split(':');
const secret = process.argv[3];
const auth = secret ? {authSecret: secret} : {};
const topic = `nsqjs_${process.pid}`;
const bodies = ['one', 'two', 'three', 'four', 'five'];
const seen = new Map();

function fail(why) {
    console.error(`nsqjs e2e: ${why}`);
    process.exit(1);
}
setTimeout(() => fail(`timed out; got ${[...seen.keys()].join(',') || 'nothing'}`), 20000).unref();

const writer = new nsq.Writer(host, Number(port), auth);
writer.on('error', (error) => fail(`writer: ${error}`));
writer.on('ready', () => {
    if (secret && writer.conn.auth?.identity !== 'nsqjs')
        fail(`writer: AUTH answered ${JSON.stringify(writer.conn.auth)}`);
    writer.publish(topic, bodies[0], (error) => {
        if (error) fail(`PUB: ${error}`);
        writer.publish(topic, bodies.slice(1), (error) => {
            if (error) fail(`MPUB: ${error}`);
            console.log('published 1 PUB and 1 MPUB');
            startReader();
        });
    });
});
writer.connect();

function startReader() {
    const reader = new nsq.Reader(topic, 'e2e', {
        nsqdTCPAddresses: [`${host}:${port}`],
        maxInFlight: 2,
        ...auth,
    });
    reader.on('error', (error) => fail(`reader: ${error}`));
    reader.on('message', (message) => {
        const body = message.body.toString();
        if (seen.has(body)) fail(`${body} came twice`);
        if (!bodies.includes(body)) fail(`unexpected body ${body}`);
        if (message.attempts !== 1) fail(`${body}: attempts ${message.attempts}`);
        seen.set(body, message.id);
        message.finish();
        if (seen.size === bodies.length) {
            console.log(`consumed ${seen.size} messages`);
            // Let the last FIN leave before closing.
            setTimeout(() => {
                reader.close();
                writer.close();
                process.exit(0);
            }, 200);
        }
    });
    reader.connect();
}
