// nsq-zmq console - plain JavaScript over lookupd's /api (lookupd_console.h).
// SPDX-License-Identifier: MIT
//
// One page, routed by the URL hash: #/ overview, #/topics, #/topic/T,
// #/topic/T/C (a channel), #/dead, #/lookupd, #/actions. The current page
// is fetched and drawn again every REFRESH_MS (not while a dialog is open),
// so it follows the cluster without a reload. Actions ask for
// confirmation, POST to /api/..., and follow the job they start until every
// broker answered. Charts are SVG drawn here from /api/history.
'use strict';

const REFRESH_MS = 2000;
const JOB_POLL_MS = 250;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const SVG = 'http://www.w3.org/2000/svg';

const state = { timer: null, route: null, metric: {}, sampled: {}, busy: false, generation: 0 };

// ---- DOM and formatting helpers -------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(n) {
  if (n === null || n === undefined) return '–';
  if (typeof n !== 'number') return String(n);
  if (!Number.isInteger(n)) return n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(1);
  return n.toLocaleString('en');
}

function rate(n) {
  return n === null || n === undefined ? '–' : fmt(Math.round(n * 10) / 10) + '/s';
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds > 0 && seconds < 1) return Math.round(seconds * 1000) + 'ms';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
}

function ago(ms) {
  return ms ? duration((Date.now() - ms) / 1000) + ' ago' : '–';
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}

function healthBadge(health) {
  const kind = health === 'OK' ? 'ok' : health === 'unknown' ? 'warn' : 'bad';
  return el('span', { class: 'badge ' + kind }, health);
}

function pausedBadge(paused) {
  return paused ? el('span', { class: 'badge paused', 'data-test': 'paused' }, 'paused') : null;
}

function table(headers, rows, attrs) {
  const head = el('tr', {}, headers.map((h) => el('th', { class: h.startsWith('#') ? 'num' : null }, h.replace(/^#/, ''))));
  return el('div', { class: 'table-wrap' }, el('table', attrs || {}, el('thead', {}, head), el('tbody', {}, rows)));
}

function num(value, attrs) {
  return el('td', Object.assign({ class: 'num' }, attrs || {}), typeof value === 'string' ? value : fmt(value));
}

function topicLink(topic) {
  return el('a', { href: '#/topic/' + encodeURIComponent(topic) }, topic);
}

function channelLink(topic, channel) {
  return el('a', { href: '#/topic/' + encodeURIComponent(topic) + '/' + encodeURIComponent(channel) }, channel);
}

function query(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v))
    .join('&');
}

// ---- API -------------------------------------------------------------------------

async function api(path, params) {
  const q = params ? query(params) : '';
  const response = await fetch('/api' + path + (q ? '?' + q : ''), { cache: 'no-store' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || 'HTTP ' + response.status);
  return body;
}

async function post(path, params) {
  const response = await fetch('/api' + path + '?' + query(params), { method: 'POST' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || 'HTTP ' + response.status);
  return body;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls a job until every target answered; returns the finished job.
async function follow(job, onProgress) {
  while (job.state !== 'done') {
    await sleep(JOB_POLL_MS);
    job = await api('/jobs', { id: job.id });
    if (onProgress) onProgress(job);
  }
  return job;
}

// ---- toasts and the dialog ------------------------------------------------------

function toast(text, kind, keepMs) {
  const node = el('div', { class: 'toast ' + (kind || ''), role: 'status' }, text);
  document.getElementById('toasts').append(node);
  setTimeout(() => node.remove(), keepMs || 5000);
  return node;
}

// Shows the dialog; resolves with the input's value (or true), or null when
// cancelled.
function ask(title, text, confirmLabel, field) {
  const modal = document.getElementById('modal');
  const input = document.getElementById('dialog-input');
  document.getElementById('dialog-title').textContent = title;
  document.getElementById('dialog-text').textContent = text;
  document.getElementById('dialog-confirm').textContent = confirmLabel;
  document.getElementById('dialog-field').hidden = !field;
  if (field) {
    document.getElementById('dialog-label').textContent = field;
    input.value = '';
  }
  modal.hidden = false;
  state.busy = true;
  (field ? input : document.getElementById('dialog-confirm')).focus();
  return new Promise((resolve) => {
    const form = document.getElementById('dialog');
    const done = (value) => {
      modal.hidden = true;
      state.busy = false;
      form.onsubmit = null;
      document.getElementById('dialog-cancel').onclick = null;
      resolve(value);
    };
    form.onsubmit = (event) => {
      event.preventDefault();
      if (field && !input.value.trim()) return;
      done(field ? input.value.trim() : true);
    };
    document.getElementById('dialog-cancel').onclick = () => done(null);
  });
}

function describe(params) {
  return params.channel ? params.topic + '/' + params.channel : params.topic;
}

// Confirms (unless a dialog already did), starts the action, follows its
// job and reports per target.
async function act(verb, path, params, where, confirmed) {
  const answer = confirmed || await ask(verb[0].toUpperCase() + verb.slice(1) + ' ' + describe(params) + '?',
    (where || 'On every broker that holds it.') + ' This is logged with your address.', verb);
  if (!answer) return null;
  const note = toast(verb + ' ' + describe(params) + '…');
  try {
    let job = await post(path, params);
    job = await follow(job, (j) => {
      const progress = j.targets.filter((t) => t.total).map((t) => t.done + '/' + t.total).join(', ');
      if (progress) note.textContent = verb + ' ' + describe(params) + ': ' + progress;
    });
    const failed = job.targets.filter((t) => t.state !== 'ok');
    note.remove();
    if (failed.length)
      toast(verb + ' failed on ' + failed.map((t) => t.target + ': ' + t.message).join('; '), 'bad', 9000);
    else toast(verb + ' ' + describe(params) + ': ok on ' + job.targets.length + ' target(s)', 'ok');
    refresh();
    return job;
  } catch (error) {
    note.remove();
    toast(verb + ' ' + describe(params) + ': ' + error.message, 'bad', 9000);
    return null;
  }
}

function actionButton(label, verb, path, params, where, danger) {
  return el('button', {
    class: 'small' + (danger ? ' danger' : ''),
    'data-action': verb,
    onclick: () => act(verb, path, params, where),
  }, label);
}

// ---- charts ---------------------------------------------------------------------

// Draws lines ({name, points: [[t_ms, value]]}) over the last windowMs as an
// SVG element; data-points counts the points drawn (for tests and people).
function lineChart(lines, windowMs, unit) {
  // Drawn at about the size it is shown (two columns on wide screens), so
  // that text is not stretched.
  const main = document.getElementById('main').clientWidth || 1200;
  const width = Math.max(280, Math.round(main < 900 ? main - 40 : main / 2 - 50));
  const height = 180, left = 44, right = 8, top = 8, bottom = 20;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('preserveAspectRatio', 'none');
  const now = Date.now();
  const start = now - windowMs;
  let max = 0, count = 0;
  for (const line of lines) for (const [, v] of line.points) if (v !== null) max = Math.max(max, v);
  max = max > 0 ? max * 1.1 : 1;
  const x = (t) => left + ((t - start) / windowMs) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (const fraction of [0, 0.5, 1]) {
    const v = max * fraction;
    add('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) });
    add('text', { x: left - 4, y: y(v) + 3, 'text-anchor': 'end' }, fmt(Math.round(v * 10) / 10) + (fraction ? unit : ''));
  }
  for (let i = 0; i <= 4; i++) {
    const t = start + (windowMs * i) / 4;
    const label = windowMs <= 900000 ? clock(t) : clock(t).slice(0, 5);
    add('text', { x: x(t), y: height - 5, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, label);
  }
  lines.forEach((line, index) => {
    const points = line.points.filter(([t, v]) => v !== null && t >= start - 1);
    if (!points.length) return;
    count += points.length;
    const color = COLORS[index % COLORS.length];
    if (points.length === 1) {
      const [t, v] = points[0];
      add('circle', { cx: x(t), cy: y(v), r: 2.5, fill: color });
      return;
    }
    const d = points.map(([t, v], i) => (i ? 'L' : 'M') + x(t).toFixed(1) + ' ' + y(v).toFixed(1)).join(' ');
    add('path', { class: 'line', d, stroke: color });
  });
  svg.dataset.points = String(count);
  const legend = el('div', { class: 'legend' }, lines.map((line, i) =>
    el('span', {}, el('i', { class: 'swatch-' + (i % COLORS.length) }), line.name)));
  legend.querySelectorAll('i').forEach((node, i) => { node.style.background = COLORS[i % COLORS.length]; });
  return el('div', { class: 'chart-box', 'data-test': 'chart' }, svg, legend);
}

const TOPIC_METRICS = [['depth', 'depth', ''], ['backend_depth', 'on disk', ''], ['message_rate', 'msgs/s', '/s']];
const CHANNEL_METRICS = [['depth', 'depth', ''], ['backend_depth', 'on disk', ''], ['in_flight', 'in flight', ''],
  ['deferred', 'deferred', ''], ['clients', 'clients', ''], ['message_rate', 'msgs/s', '/s'],
  ['requeue_rate', 'requeued/s', '/s'], ['timeout_rate', 'timed out/s', '/s']];

// A chart card for one topic or channel: metric tabs and a line per broker.
function historyCard(history, channel, title) {
  const series = (history && history.series || []).filter((s) => s.channel === channel);
  const metrics = channel ? CHANNEL_METRICS : TOPIC_METRICS;
  const key = (channel || '') + '@topic';
  const chosen = state.metric[key] || metrics[0][0];
  const metric = metrics.find((m) => m[0] === chosen) || metrics[0];
  const lines = series.map((s) => {
    const index = s.fields.indexOf(metric[0]);
    return { name: s.node, points: s.points.map((p) => [p[0], p[index]]) };
  });
  const tabs = el('div', { class: 'tabs' }, metrics.map(([name, label]) =>
    el('button', {
      class: name === metric[0] ? 'on' : null,
      onclick: () => { state.metric[key] = name; refresh(); },
    }, label)));
  const windowMs = history ? history.window_ms : 3600000;
  return el('div', { class: 'panel', 'data-chart': channel || '(topic)' },
    el('h2', {}, title, el('span', { class: 'muted' }, ' · last ' + duration(windowMs / 1000))),
    tabs,
    series.length ? lineChart(lines, windowMs, metric[2]) : el('p', { class: 'empty' }, 'No history yet (the first poll is on its way, or history is off).'));
}

// ---- pages ----------------------------------------------------------------------

async function pageOverview() {
  const data = await api('/overview');
  const t = data.totals || {};
  const card = (label, value, test) => el('div', { class: 'card' }, el('div', { class: 'value', 'data-test': test }, value), el('div', { class: 'label' }, label));
  const rows = data.brokers.map((b) => el('tr', { 'data-test': 'broker-row', 'data-node': b.node },
    el('td', { class: 'mono' }, b.node),
    el('td', { class: 'hide-narrow' }, b.hostname),
    el('td', {}, b.version),
    el('td', { title: b.error || '' }, healthBadge(b.health), b.error ? el('div', { class: 'muted' }, b.error) : null),
    el('td', {}, duration(b.uptime_s)),
    num(b.topics), num(b.depth), num(b.in_flight), num(b.clients), num(rate(b.message_rate)),
    el('td', { class: 'muted hide-narrow' }, ago(b.polled_at))));
  return [
    el('div', { class: 'head' }, el('h1', {}, 'Overview')),
    el('div', { class: 'cards' },
      card('brokers healthy', fmt(t.healthy || 0) + ' / ' + fmt(t.brokers || 0), 'brokers'),
      card('topics', fmt(t.topics || 0)), card('channels', fmt(t.channels || 0)),
      card('depth', fmt(t.depth || 0)), card('in flight', fmt(t.in_flight || 0)),
      card('clients', fmt(t.clients || 0)), card('messages', rate(t.message_rate || 0))),
    el('div', { class: 'panel' }, el('h2', {}, 'Brokers'),
      rows.length ? table(['broker', 'hostname', 'version', 'health', 'uptime', '#topics', '#depth', '#in flight', '#clients', '#msgs', 'polled'], rows, { 'data-test': 'brokers' })
        : el('p', { class: 'empty' }, 'No broker has registered with this lookupd.')),
  ];
}

async function pageTopics() {
  const data = await api('/topics');
  const rows = data.topics.map((t) => el('tr', { 'data-test': 'topic-row', 'data-topic': t.topic },
    el('td', {}, topicLink(t.topic), ' ', pausedBadge(t.paused)),
    num(t.depth, { 'data-test': 'depth' }), num(t.memory_depth), num(t.backend_depth),
    num(t.message_count), num(rate(t.message_rate)),
    el('td', {}, t.channels.map((c, i) => [i ? ', ' : '', channelLink(t.topic, c.channel)])),
    num(t.brokers.length)));
  const create = el('button', {
    class: 'primary', 'data-action': 'create-topic',
    onclick: async () => {
      const name = await ask('Create a topic', 'On every broker, and in lookupd. This is logged with your address.', 'create', 'Topic name');
      if (name) act('create', '/topic/create', { topic: name }, 'On every broker.', true);
    },
  }, 'Create topic');
  return [
    el('div', { class: 'head' }, el('h1', {}, 'Topics'), el('div', { class: 'actions' }, create)),
    el('div', { class: 'panel' },
      rows.length ? table(['topic', '#depth', '#memory', '#disk', '#messages', '#msgs', 'channels', '#brokers'], rows, { 'data-test': 'topics' })
        : el('p', { class: 'empty' }, 'No topics yet.')),
  ];
}

function topicActions(topic) {
  const where = 'On every broker that holds ' + topic.topic + '.';
  const p = { topic: topic.topic };
  return el('div', { class: 'actions' },
    topic.paused ? actionButton('Unpause', 'unpause', '/topic/unpause', p, where)
      : actionButton('Pause', 'pause', '/topic/pause', p, where),
    actionButton('Empty', 'empty', '/topic/empty', p, where, true),
    actionButton('Delete', 'delete', '/topic/delete', p, where, true),
    el('button', {
      class: 'small', 'data-action': 'create-channel',
      onclick: async () => {
        const name = await ask('Create a channel of ' + topic.topic, where + ' This is logged with your address.', 'create', 'Channel name');
        if (name) act('create', '/channel/create', { topic: topic.topic, channel: name }, where, true);
      },
    }, 'Create channel'));
}

function channelActions(topic, channel) {
  const where = 'On every broker that holds ' + topic + '/' + channel.channel + '.';
  const p = { topic, channel: channel.channel };
  return el('span', { class: 'actions' },
    channel.paused ? actionButton('Unpause', 'unpause', '/channel/unpause', p, where)
      : actionButton('Pause', 'pause', '/channel/pause', p, where),
    actionButton('Empty', 'empty', '/channel/empty', p, where, true),
    actionButton('Delete', 'delete', '/channel/delete', p, where, true));
}

function channelCells(c) {
  return [num(c.depth, { 'data-test': 'depth' }), num(c.memory_depth), num(c.backend_depth), num(c.in_flight),
    num(c.deferred), num(c.requeued), num(c.timed_out), num(c.clients), num(rate(c.message_rate))];
}

async function pageTopic(name) {
  const [data, history] = await Promise.all([api('/topics', { topic: name }),
    api('/history', { topic: name }).catch(() => null)]);
  const topic = data.topics[0];
  if (!topic) return [el('h1', {}, name), el('p', { class: 'empty' }, 'No broker holds this topic.')];
  const brokerRows = topic.brokers.map((b) => el('tr', { 'data-test': 'topic-broker', 'data-node': b.node },
    el('td', { class: 'mono' }, b.node, ' ', pausedBadge(b.paused), b.unreachable ? el('span', { class: 'badge bad' }, 'unreachable') : null),
    b.stale ? el('td', { class: 'muted', colspan: 5 }, 'not polled') : [num(b.depth, { 'data-test': 'depth' }), num(b.memory_depth), num(b.backend_depth), num(b.message_count), num(rate(b.message_rate))],
    el('td', {}, actionButton('Tombstone', 'tombstone', '/topic/tombstone', { topic: name, node: b.node },
      'Lookupds stop listing ' + b.node + ' for this topic (consumers disconnect from it) for the tombstone lifetime.', true))));
  const channelRows = [];
  for (const c of topic.channels) {
    channelRows.push(el('tr', { 'data-test': 'channel-row', 'data-channel': c.channel },
      el('td', {}, channelLink(name, c.channel), ' ', pausedBadge(c.paused)), channelCells(c), el('td', {}, channelActions(name, c))));
    for (const b of c.brokers)
      channelRows.push(el('tr', { class: 'sub', 'data-test': 'channel-broker', 'data-channel': c.channel, 'data-node': b.node },
        el('td', { class: 'mono' }, b.node, ' ', pausedBadge(b.paused)), channelCells(b), el('td', {})));
  }
  const charts = [historyCard(history, '', 'Topic ' + name)].concat(topic.channels.map((c) => historyCard(history, c.channel, 'Channel ' + c.channel)));
  return [
    el('div', { class: 'head' }, el('div', {}, el('h1', {}, name, ' ', pausedBadge(topic.paused)),
      el('div', { class: 'muted' }, fmt(topic.depth) + ' queued in the topic · ' + rate(topic.message_rate) + ' · ' + topic.brokers.length + ' broker(s)')), topicActions(topic)),
    el('div', { class: 'panel' }, el('h2', {}, 'Per broker'),
      table(['broker', '#depth', '#memory', '#disk', '#messages', '#msgs', ''], brokerRows, { 'data-test': 'topic-brokers' })),
    el('div', { class: 'panel' }, el('h2', {}, 'Channels'),
      channelRows.length ? table(['channel', '#depth', '#memory', '#disk', '#in flight', '#deferred', '#requeued', '#timed out', '#clients', '#msgs', ''], channelRows, { 'data-test': 'channels' })
        : el('p', { class: 'empty' }, 'No channel: the topic keeps its messages until one appears.')),
    el('div', { class: 'grid2' }, charts),
  ];
}

async function pageChannel(topicName, channelName) {
  const data = await api('/channel', { topic: topicName, channel: channelName });
  const clients = [];
  for (const b of data.brokers)
    for (const c of b.client_list || [])
      clients.push(el('tr', { 'data-test': 'client-row' },
        el('td', {}, c.client_id || c.hostname || '?'), el('td', { class: 'mono' }, c.remote_address || '–'),
        el('td', {}, c.door || 'zmq'), el('td', { class: 'mono' }, b.node),
        num(c.ready_count), num(c.in_flight_count), num(c.finish_count), num(c.requeue_count), num(c.message_count),
        el('td', {}, c.connect_ts ? duration(Date.now() / 1000 - c.connect_ts) : '–'),
        el('td', { class: 'muted hide-narrow' }, c.user_agent || '')));
  const brokerRows = data.brokers.map((b) => el('tr', { 'data-test': 'channel-broker', 'data-node': b.node },
    el('td', { class: 'mono' }, b.node, ' ', pausedBadge(b.paused)), channelCells(b)));
  const any = data.brokers[0];
  const paused = data.brokers.some((b) => b.paused);
  return [
    el('div', { class: 'head' }, el('div', {}, el('h1', {}, topicLink(topicName), ' / ', channelName),
      el('div', { class: 'muted' }, data.brokers.length + ' broker(s)')),
      any ? channelActions(topicName, { channel: channelName, paused }) : null),
    el('div', { class: 'panel' }, el('h2', {}, 'Per broker'),
      brokerRows.length ? table(['broker', '#depth', '#memory', '#disk', '#in flight', '#deferred', '#requeued', '#timed out', '#clients', '#msgs'], brokerRows)
        : el('p', { class: 'empty' }, 'No broker holds this channel.')),
    el('div', { class: 'panel' }, el('h2', {}, 'Clients'),
      clients.length ? table(['client', 'address', 'door', 'broker', '#credit', '#in flight', '#finished', '#requeued', '#messages', 'connected', 'user agent'], clients, { 'data-test': 'clients' })
        : el('p', { class: 'empty' }, 'No consumer is subscribed.')),
  ];
}

function nsAgo(ns) {
  return ns ? ago(ns / 1e6) : '–';
}

function sampleView(brokers) {
  const samples = brokers.filter((b) => b.sample);
  if (!samples.length) return el('span', { class: 'muted' }, 'not sampled');
  const oldest = Math.min(...samples.map((b) => b.sample.oldest_dead_at || Infinity));
  const failures = {};
  for (const b of samples) for (const [k, v] of Object.entries(b.sample.failures || {})) failures[k] = (failures[k] || 0) + v;
  const headers = samples.flatMap((b) => b.sample.headers || []);
  return el('div', {},
    el('div', { 'data-test': 'oldest' }, 'oldest died ', oldest === Infinity ? '–' : nsAgo(oldest)),
    el('div', { class: 'muted' }, Object.entries(failures).map(([k, v]) => k + ' ×' + v).join(', ') || 'no header'),
    headers.length ? el('details', {}, el('summary', {}, headers.length + ' header(s)'),
      table(['from', 'id', '#attempts', 'first seen', 'died', 'failure'], headers.map((h) => el('tr', {},
        el('td', {}, h.topic + '/' + h.channel), el('td', { class: 'mono' }, h.id), num(h.attempts),
        el('td', {}, nsAgo(h.first_seen)), el('td', {}, nsAgo(h.dead_at)),
        el('td', {}, h.failure.kind + ' ' + h.failure.code + (h.failure.detail ? ': ' + h.failure.detail : '')))))) : null);
}

async function sample(topic, quiet) {
  state.sampled[topic] = Date.now();
  try {
    const job = await follow(await post('/deadletters/sample', { topic }));
    if (!quiet) toast('sampled ' + topic + ': ' + job.targets.map((t) => t.message).join(', '));
  } catch (error) {
    if (!quiet) toast('sample ' + topic + ': ' + error.message, 'bad');
  }
  refresh();
}

async function pageDead() {
  const data = await api('/deadletters');
  const rows = data.topics.map((t) => {
    // A sample looks at the messages (through the "replay" channel) and puts
    // them back in order: taken once a minute at most, when there is any.
    if (t.count > 0 && !state.sampled[t.topic] && !t.brokers.some((b) => b.sample)) sample(t.topic, true);
    return el('tr', { 'data-test': 'dead-row', 'data-topic': t.topic },
      el('td', {}, topicLink(t.topic)), el('td', {}, topicLink(t.origin)),
      num(t.count, { 'data-test': 'count' }),
      el('td', {}, t.brokers.map((b) => el('div', { class: 'mono' }, b.node + ': ' + fmt(b.count)))),
      el('td', {}, sampleView(t.brokers)),
      el('td', {}, el('span', { class: 'actions' },
        el('button', { class: 'small', 'data-action': 'sample', onclick: () => sample(t.topic, false) }, 'Sample'),
        actionButton('Replay', 'replay', '/deadletters/replay', { topic: t.topic },
          'Every dead letter goes back to ' + t.origin + ' on the broker that holds it, then leaves ' + t.topic + '.', true))));
  });
  return [
    el('div', { class: 'head' }, el('h1', {}, 'Dead letters')),
    el('p', { class: 'muted' }, 'Topics named *.dead: messages a worker gave up on, each with a header saying where it came from and why it failed. Replay publishes them back to their topic.'),
    el('div', { class: 'panel' }, rows.length ? table(['dead topic', 'origin', '#count', 'per broker', 'sample', ''], rows, { 'data-test': 'dead' })
      : el('p', { class: 'empty' }, 'No dead-letter topic.')),
  ];
}

async function pageLookupd() {
  const data = await api('/lookupd');
  const info = data.info || {};
  const history = data.console.history;
  const kv = (pairs) => table(['', ''], pairs.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))));
  const peers = data.peers.map((p) => el('tr', { 'data-test': 'peer-row' },
    el('td', { class: 'mono' }, p.address), el('td', {}, healthBadge(p.health), p.error ? ' ' + p.error : ''),
    el('td', {}, p.info ? p.info.version : '–'), el('td', {}, p.info ? p.info.broadcast_address : '–'), el('td', { class: 'muted' }, ago(p.polled_at))));
  return [
    el('div', { class: 'head' }, el('h1', {}, 'Lookupd')),
    el('div', { class: 'grid2' },
      el('div', { class: 'panel', 'data-test': 'this-lookupd' }, el('h2', {}, 'This lookupd'), kv([
        ['version', info.version], ['broadcast address', info.broadcast_address], ['hostname', info.hostname],
        ['HTTP port', info.http_port], ['ZeroMQ port', info.zmq_port], ['up for', duration((Date.now() - data.started_at) / 1000)],
        ['brokers', fmt(data.brokers)], ['stats polled every', data.console.stats_interval_ms ? duration(data.console.stats_interval_ms / 1000) : 'never']])),
      el('div', { class: 'panel' }, el('h2', {}, 'History'), history ? kv([
        ['window', duration(history.window_ms / 1000)], ['one point per', duration(history.step_ms / 1000)],
        ['series', fmt(history.series)], ['memory', fmt(history.bytes) + ' of ' + fmt(history.max_bytes) + ' bytes'],
        ['refused (bound reached)', fmt(history.refused)], ['evicted (stale)', fmt(history.evicted)], ['expired', fmt(history.expired)]])
        : el('p', { class: 'empty' }, 'History is off.'))),
    el('div', { class: 'panel' }, el('h2', {}, 'Peer lookupds'),
      peers.length ? table(['address', 'health', 'version', 'broadcast address', 'polled'], peers)
        : el('p', { class: 'empty' }, 'None configured (--peer-http-address).')),
  ];
}

async function pageActions() {
  const data = await api('/jobs');
  const rows = data.jobs.map((j) => el('tr', { 'data-test': 'job-row' },
    num(j.id), el('td', {}, clock(j.started_at)), el('td', {}, j.action),
    el('td', {}, [j.topic, j.channel].filter(Boolean).join('/') + (j.node ? ' @ ' + j.node : '')),
    el('td', {}, j.state === 'done' ? el('span', { class: 'badge ' + (j.ok ? 'ok' : 'bad') }, j.ok ? 'ok' : 'failed') : el('span', { class: 'badge warn' }, 'running')),
    el('td', {}, j.targets.map((t) => el('div', {}, t.target + ': ' + t.state + (t.message ? ' (' + t.message + ')' : '')))),
    el('td', { class: 'muted' }, j.remote + (j.user_agent ? ' · ' + j.user_agent.slice(0, 40) : ''))));
  return [
    el('div', { class: 'head' }, el('h1', {}, 'Recent actions')),
    el('div', { class: 'panel' }, rows.length ? table(['#id', 'at', 'action', 'what', 'result', 'targets', 'who'], rows)
      : el('p', { class: 'empty' }, 'No action since lookupd started.')),
  ];
}

// ---- router and refresh ----------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'topic' && parts[1] && parts[2]) return { page: 'topics', draw: () => pageChannel(parts[1], parts[2]) };
  if (parts[0] === 'topic' && parts[1]) return { page: 'topics', draw: () => pageTopic(parts[1]) };
  const pages = { topics: pageTopics, dead: pageDead, lookupd: pageLookupd, actions: pageActions };
  const page = pages[parts[0]] ? parts[0] : 'overview';
  return { page, draw: pages[parts[0]] || pageOverview };
}

async function refresh() {
  clearTimeout(state.timer);
  const generation = ++state.generation;
  const status = document.getElementById('status');
  if (!state.busy) {
    const current = route();
    document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === current.page));
    try {
      const content = await current.draw();
      if (generation !== state.generation) return;  // a newer refresh won
      const main = document.getElementById('main');
      main.replaceChildren(...content.flat().filter(Boolean));
      main.dataset.loaded = current.page;
      status.textContent = 'updated ' + clock(Date.now());
      status.classList.remove('error');
    } catch (error) {
      if (generation !== state.generation) return;
      status.textContent = 'lookupd unreachable: ' + error.message;
      status.classList.add('error');
    }
  }
  state.timer = setTimeout(refresh, REFRESH_MS);
}

window.addEventListener('hashchange', refresh);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && !document.getElementById('modal').hidden) document.getElementById('dialog-cancel').click();
});
refresh();
