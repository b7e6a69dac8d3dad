// cluster.js - a real cluster for the console tests: one nsq-lookupd and
// two nsq-brokers on 127.0.0.1, every port picked by the kernel (port 0,
// read back from each READY line), data in a temporary directory. Every
// process is stopped by the PID we started (SIGTERM, SIGKILL after 5 s),
// also when the test fails or is interrupted.
// SPDX-License-Identifier: MIT
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const children = new Set();

function killAll() {
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone already */ }
  }
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { killAll(); process.exit(130); });

// Starts a helper process that is killed with the others if the test dies.
function spawnTracked(binary, args) {
  const child = spawn(binary, args, { stdio: 'ignore' });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

// Starts binary with args; resolves {child, http, zmq, log} once it printed
// READY, rejects after 10 s or if it exits first.
function start(binary, args, name, dir) {
  const log = path.join(dir, name + '.log');
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', fs.openSync(log, 'w')] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(name + ' printed no READY line within 10 s; see ' + log)), 10000);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(name + ' exited with ' + code + ' before READY; see ' + log)); });
    child.stdout.on('data', (data) => {
      out += data;
      const match = /READY http=(\S+) zmq=(\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ name, child, http: match[1], zmq: match[2], log });
      }
    });
  });
}

// SIGTERM to the PID, then SIGKILL after timeoutMs; resolves the exit code.
function stop(proc, timeoutMs = 5000) {
  const child = proc.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* gone */ } }, timeoutMs);
    child.once('exit', (code) => { clearTimeout(timer); resolve(code); });
    process.kill(child.pid, 'SIGTERM');
  });
}

// lookupdFlags: extra flags (e.g. a short --stats-interval).
async function startCluster(lookupdFlags = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsq-console-'));
  const lookupdBin = process.env.NSQ_LOOKUPD, brokerBin = process.env.NSQ_BROKER;
  if (!lookupdBin || !brokerBin) throw new Error('NSQ_LOOKUPD and NSQ_BROKER must name the binaries');
  const lookupd = await start(lookupdBin, ['--http-address=127.0.0.1:0', '--zmq-address=127.0.0.1:0', ...lookupdFlags], 'lookupd', dir);
  const brokers = [];
  for (let i = 1; i <= 2; i++) {
    const data = path.join(dir, 'broker-' + i);
    fs.mkdirSync(data);
    brokers.push(await start(brokerBin, ['--http-address=127.0.0.1:0', '--zmq-address=127.0.0.1:0', '--tcp-address=127.0.0.1:0',
      '--broadcast-address=127.0.0.1', '--data-path=' + data, '--lookupd-address=' + lookupd.zmq,
      '--lookupd-heartbeat-interval=1s'], 'broker-' + i, dir));
  }
  return {
    dir, lookupd, brokers,
    async stop() {
      for (const p of [...brokers, lookupd]) await stop(p);
    },
    logs() {
      return [lookupd, ...brokers].map((p) => '--- ' + p.name + '\n' + tail(p.log)).join('\n');
    },
  };
}

function tail(file, lines = 25) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch (_) { return ''; }
}

// HTTP helpers over Node's fetch.
async function http(address, method, pathAndQuery, body) {
  const response = await fetch('http://' + address + pathAndQuery, { method, body });
  const text = await response.text();
  return { status: response.status, text, headers: response.headers };
}

async function stats(broker) {
  const answer = await http(broker.http, 'GET', '/stats?format=json');
  if (answer.status !== 200) throw new Error(broker.name + ' /stats answered ' + answer.status);
  return JSON.parse(answer.text);
}

function topicOf(doc, topic) {
  return doc.topics.find((t) => t.topic_name === topic);
}

function channelOf(doc, topic, channel) {
  const t = topicOf(doc, topic);
  return t && t.channels.find((c) => c.channel_name === channel);
}

// Polls check() (async, returns truthy when done) every 100 ms until
// deadlineMs passes; throws with what describe() says then.
async function eventually(check, deadlineMs, describe) {
  const end = Date.now() + deadlineMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error.message;
    }
    if (Date.now() > end) throw new Error('not within ' + deadlineMs + ' ms: ' + describe() + ' (last: ' + JSON.stringify(last) + ')');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// A dead letter as nsq-worker writes it (libnsq/nsq_deadletter.h): a JSON
// header line, then the original body.
function deadLetter(topic, channel, index, body, broker) {
  const now = BigInt(Date.now()) * 1000000n;
  const header = `{"v":1,"topic":"${topic}","channel":"${channel}","id":"${(0xa000 + index).toString(16).padStart(16, '0')}",` +
    `"attempts":5,"first_seen":${now - BigInt(60 + index) * 1000000000n},"dead_at":${now - BigInt(index) * 1000000000n},` +
    `"broker":"${broker}","failure":{"kind":"http","code":503,"detail":"Service Unavailable"}}`;
  return header + '\n' + body;
}

module.exports = { startCluster, stop, spawnTracked, http, stats, topicOf, channelOf, eventually, deadLetter };
