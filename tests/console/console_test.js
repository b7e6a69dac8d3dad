// console_test.js - the lookupd web console in a real headless Chromium
// (Debian's /usr/bin/chromium driven by puppeteer-core) against a real
// cluster: one nsq-lookupd, two nsq-brokers (cluster.js).
//
//   NSQ_LOOKUPD=... NSQ_BROKER=... NSQ_CTL=... CONSOLE_ARTIFACTS=DIR node console_test.js
//
// Checks, in order: the console's files are served with their types and a
// working ETag; the overview lists both brokers; a topic page shows the
// depth each broker's /stats reports; the channel's chart has points after
// some traffic; clicking pause (and confirming) pauses the channel on both
// brokers, as their /stats say; the dead-letter page shows the count and a
// sample's oldest message, and a replay empties the dead topic and puts
// every message back on its topic; the channel page lists a consumer
// (nsq-ctl tail); the Lookupd and Actions pages render; Create topic
// creates it on both brokers; the pages fit a phone's width; and the
// browser logged no error. lookupd polls every 200 ms and keeps a
// one-minute window here, so the chart fills in seconds instead of a real
// minute.
// Screenshots (desktop and phone) go to CONSOLE_ARTIFACTS.
// Exit 0 passed, 1 failed, 77 skipped (no Chromium or no node_modules).
// SPDX-License-Identifier: MIT
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

let puppeteer;
try {
  puppeteer = require('puppeteer-core');
} catch (_) {
  console.log('SKIP: puppeteer-core is not installed (scripts/install-deps.sh runs npm ci in tests/console)');
  process.exit(77);
}
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(chromium)) {
  console.log('SKIP: no ' + chromium + ' (scripts/install-deps.sh installs Debian\'s chromium)');
  process.exit(77);
}
const { startCluster, spawnTracked, http, stats, topicOf, channelOf, eventually, deadLetter } = require('./cluster');

const artifacts = process.env.CONSOLE_ARTIFACTS || process.cwd();
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
let passed = 0;

function ok(name) {
  passed++;
  console.log('ok ' + passed + ' - ' + name);
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function screenshot(page, name) {
  const file = path.join(artifacts, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log('# screenshot ' + file);
}

// The text of the cell at column index of the row matching selector.
async function cell(page, selector, index) {
  return page.$eval(selector, (row, i) => row.children[i].textContent.trim(), index).catch(() => null);
}

function number(text) {
  return text === null ? null : Number(String(text).replace(/[^0-9.-]/g, ''));
}

async function open(page, address, hash) {
  await page.goto('http://' + address + '/' + hash, { waitUntil: 'load' });
  await page.waitForSelector('#main[data-loaded]', { timeout: 10000 });
}

// Clicks the button, then Confirm in the dialog.
async function clickConfirmed(page, selector) {
  await page.click(selector);
  await page.waitForSelector('#modal:not([hidden])', { timeout: 5000 });
  await page.click('#dialog-confirm');
}

async function checkAssets(lookupd) {
  const index = await http(lookupd.http, 'GET', '/');
  assert(index.status === 200 && index.headers.get('content-type').startsWith('text/html'), 'GET / is not the console');
  const etag = index.headers.get('etag');
  assert(etag && index.headers.get('cache-control') === 'no-cache', 'no ETag or Cache-Control on /');
  const again = await fetch('http://' + lookupd.http + '/', { headers: { 'If-None-Match': etag } });
  assert(again.status === 304, 'If-None-Match with the ETag answered ' + again.status + ', not 304');
  const script = await http(lookupd.http, 'GET', '/console/app.js');
  assert(script.status === 200 && /javascript/.test(script.headers.get('content-type')), 'app.js is not served as JavaScript');
  ok('the console is embedded: /, /console/app.js with their types, ETag and 304');
}

async function checkOverview(page, cluster) {
  await open(page, cluster.lookupd.http, '#/');
  await eventually(async () => {
    const nodes = await page.$$eval('[data-test=broker-row]', (rows) => rows.map((r) => r.dataset.node + ' ' + r.textContent));
    return nodes.length === 2 && cluster.brokers.every((b) => nodes.some((n) => n.startsWith('127.0.0.1:' + b.http.split(':')[1]) && n.includes('OK')));
  }, 10000, () => 'two broker rows, both OK');
  await screenshot(page, 'console-overview-desktop.png');
  ok('the overview lists both brokers, healthy');
}

async function checkTopicDepth(page, cluster) {
  await open(page, cluster.lookupd.http, '#/topic/orders');
  for (const broker of cluster.brokers) {
    const node = '127.0.0.1:' + broker.http.split(':')[1];
    await eventually(async () => {
      const doc = await stats(broker);
      const want = channelOf(doc, 'orders', 'billing').depth;
      const wantTopic = topicOf(doc, 'orders').depth;
      const shown = number(await cell(page, `tr[data-test=channel-broker][data-channel=billing][data-node="${node}"]`, 1));
      const shownTopic = number(await cell(page, `tr[data-test=topic-broker][data-node="${node}"]`, 1));
      return shown === want && shownTopic === wantTopic && want > 0 ? want : false;
    }, 10000, () => 'the depth of orders/billing on ' + node + ' as its /stats says');
  }
  ok('the topic page shows the depth each broker\'s /stats reports');
}

async function checkChart(page, cluster) {
  // Traffic for two seconds on both brokers; lookupd records a point per 400 ms.
  const end = Date.now() + 2000;
  for (let i = 0; Date.now() < end; i++) {
    for (const broker of cluster.brokers)
      await http(broker.http, 'POST', '/mpub?topic=orders', Array.from({ length: 20 }, (_, j) => 'm' + i + '-' + j).join('\n'));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const points = await eventually(async () => {
    const count = await page.$eval('[data-chart=billing] svg', (svg) => Number(svg.dataset.points)).catch(() => 0);
    return count >= 8 ? count : false;
  }, 10000, () => 'eight points on the billing chart');
  await screenshot(page, 'console-topic-desktop.png');
  ok('the channel chart has ' + points + ' points after traffic');
}

async function checkPause(page, cluster) {
  await clickConfirmed(page, 'tr[data-test=channel-row][data-channel=billing] button[data-action=pause]');
  for (const broker of cluster.brokers)
    await eventually(async () => channelOf(await stats(broker), 'orders', 'billing').paused === true, 5000,
      () => broker.name + '/stats: orders/billing paused');
  await page.waitForSelector('tr[data-test=channel-row][data-channel=billing] [data-test=paused]', { timeout: 5000 });
  ok('pause, confirmed in the page, paused the channel on both brokers (their /stats say so)');
}

async function checkDeadLetters(page, cluster) {
  // 4 dead letters on the first broker, 2 on the second.
  const counts = [4, 2], before = [];
  for (const [i, broker] of cluster.brokers.entries()) {
    before.push(channelOf(await stats(broker), 'orders', 'billing').depth);
    for (let n = 0; n < counts[i]; n++) {
      const answer = await http(broker.http, 'POST', '/pub?topic=orders.dead',
        deadLetter('orders', 'billing', n, 'order ' + i + '-' + n, broker.zmq));
      assert(answer.status === 200, 'publishing a dead letter answered ' + answer.status);
    }
  }
  await open(page, cluster.lookupd.http, '#/dead');
  await eventually(async () => number(await cell(page, 'tr[data-test=dead-row][data-topic="orders.dead"]', 2)) === 6,
    10000, () => 'orders.dead with 6 dead letters');
  // The page samples on its own: the oldest died 3 seconds before it was published.
  await eventually(async () => {
    const text = await page.$eval('tr[data-topic="orders.dead"] [data-test=oldest]', (n) => n.textContent).catch(() => '');
    return /died \d/.test(text) ? text : false;
  }, 10000, () => 'the sample\'s oldest message shown');
  await screenshot(page, 'console-dead-desktop.png');
  await clickConfirmed(page, 'tr[data-topic="orders.dead"] button[data-action=replay]');
  for (const [i, broker] of cluster.brokers.entries()) {
    await eventually(async () => {
      const doc = await stats(broker);
      const dead = topicOf(doc, 'orders.dead');
      const replay = channelOf(doc, 'orders.dead', 'replay');
      const left = dead.depth + (replay ? replay.depth + replay.in_flight_count + replay.deferred_count : 0);
      const back = channelOf(doc, 'orders', 'billing').depth - before[i];
      return left === 0 && back === counts[i];
    }, 15000, () => broker.name + ': orders.dead empty and ' + counts[i] + ' messages back on orders/billing');
  }
  await eventually(async () => number(await cell(page, 'tr[data-test=dead-row][data-topic="orders.dead"]', 2)) === 0,
    10000, () => 'the page shows orders.dead empty');
  ok('a replayed dead-letter topic ends empty, its 6 messages back on their topic');
}

// The channel page lists a real consumer (nsq-ctl tail, an ephemeral
// channel) with its door and credit; the Lookupd and Actions pages render.
async function checkChannelAndOthers(page, cluster) {
  const ctl = process.env.NSQ_CTL;
  if (!ctl) throw new Error('NSQ_CTL must name nsq-ctl');
  const tail = spawnTracked(ctl, ['--lookupd-http-address=' + cluster.lookupd.http, 'tail', 'orders']);
  try {
    const channel = 'tail-' + tail.pid + '#ephemeral';
    await open(page, cluster.lookupd.http, '#/topic/orders/' + encodeURIComponent(channel));
    const row = await eventually(async () => {
      const cells = await page.$$eval('tr[data-test=client-row] td', (tds) => tds.map((td) => td.textContent.trim())).catch(() => []);
      return cells.length && cells[0] === 'nsq-ctl-tail' && cells[2] === 'zmq' && Number(cells[4]) > 0 ? cells : false;
    }, 10000, () => 'the tail consumer on the channel page');
    const counts = await page.$$eval('tr[data-test=channel-broker]', (trs) => trs.map((tr) => tr.children[8].textContent.trim()));
    assert(counts.length === 2 && counts.every((c) => c === '1'), 'per-broker client counts ' + JSON.stringify(counts) + ', want 1 on each');
    await screenshot(page, 'console-channel-desktop.png');
    ok('the channel page lists the consumer: ' + row.slice(0, 5).join(' | '));
  } finally {
    process.kill(tail.pid, 'SIGTERM');
  }
  await open(page, cluster.lookupd.http, '#/lookupd');
  await page.waitForSelector('[data-test=this-lookupd]', { timeout: 5000 });
  await open(page, cluster.lookupd.http, '#/actions');
  const actions = await eventually(async () => {
    const rows = await page.$$eval('tr[data-test=job-row]', (trs) => trs.map((tr) => tr.children[2].textContent));
    return rows.includes('pause') && rows.includes('replay') ? rows : false;
  }, 5000, () => 'pause and replay among the recent actions');
  ok('the Lookupd page renders; Actions lists ' + actions.length + ' actions');
}

// Create topic, from the Topics page: on both brokers.
async function checkCreate(page, cluster) {
  await open(page, cluster.lookupd.http, '#/topics');
  await page.click('button[data-action=create-topic]');
  await page.waitForSelector('#modal:not([hidden]) #dialog-input', { timeout: 5000 });
  await page.type('#dialog-input', 'invoices');
  await page.click('#dialog-confirm');
  for (const broker of cluster.brokers)
    await eventually(async () => topicOf(await stats(broker), 'invoices'), 5000, () => broker.name + ' has topic invoices');
  await page.waitForSelector('tr[data-test=topic-row][data-topic=invoices]', { timeout: 5000 });
  ok('create topic, from the Topics page, created it on both brokers');
}

async function checkPhone(page, cluster) {
  await page.setViewport(PHONE);
  for (const [hash, name] of [['#/', 'console-overview-phone.png'], ['#/topic/orders', 'console-topic-phone.png']]) {
    await open(page, cluster.lookupd.http, hash);
    await page.waitForSelector(hash === '#/' ? '[data-test=broker-row]' : '[data-chart=billing] svg', { timeout: 10000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, hash + ' is ' + overflow + ' px wider than a phone');
    await screenshot(page, name);
  }
  ok('the overview and a topic page fit a phone\'s width (tables scroll inside)');
}

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  const cluster = await startCluster(['--stats-interval=200ms', '--history-window=1m']);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nsq-console-chromium-'));
  let browser;
  const errors = [];
  try {
    // Topic orders with channel billing on both brokers, different depths.
    for (const [i, broker] of cluster.brokers.entries()) {
      await http(broker.http, 'POST', '/channel/create?topic=orders&channel=billing');
      await http(broker.http, 'POST', '/mpub?topic=orders', Array.from({ length: 5 - 2 * i }, (_, n) => 'hello ' + n).join('\n'));
    }
    await checkAssets(cluster.lookupd);
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      userDataDir: profile,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    page.on('console', (message) => { if (message.type() === 'error') errors.push('console: ' + message.text()); });
    page.on('pageerror', (error) => errors.push('page error: ' + error.message));
    page.on('requestfailed', (request) => errors.push('request failed: ' + request.url() + ' ' + (request.failure() || {}).errorText));
    await page.setViewport(DESKTOP);
    await checkOverview(page, cluster);
    await checkTopicDepth(page, cluster);
    await checkChart(page, cluster);
    await checkPause(page, cluster);
    await checkDeadLetters(page, cluster);
    await checkChannelAndOthers(page, cluster);
    await checkCreate(page, cluster);
    await checkPhone(page, cluster);
    assert(errors.length === 0, 'the browser logged errors:\n  ' + errors.join('\n  '));
    ok('no console error, page error or failed request');
    await browser.close();
    browser = null;
    await cluster.stop();
    console.log(passed + ' passed, 0 failed');
  } catch (error) {
    console.log('not ok ' + (passed + 1) + ' - ' + error.message);
    if (errors.length) console.log('# browser errors:\n# ' + errors.join('\n# '));
    console.log(cluster.logs());
    if (browser) await browser.close().catch(() => {});
    await cluster.stop();
    console.log(passed + ' passed, 1 failed');
    process.exitCode = 1;
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main();
