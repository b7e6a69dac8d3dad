#!/usr/bin/env node
// check_manifests.js - offline checks of what we ship for deployment:
//   - every Kubernetes object under k8s/ (and as `kubectl kustomize` renders
//     k8s/ and k8s/keda/, when kubectl exists) against the Kubernetes 1.27
//     schema (npm kubernetes-models), plus unknown fields at any depth
//     (property lists read from the models' type declarations), plus
//     cross-references (selectors, ports, targets, lookupd addresses);
//   - the KEDA ScaledObject (no schema package): its shape and the NSQ
//     scaler's metadata keys, and that it scales the worker on its channel;
//   - what a real cluster needs (raw files and each rendering): no
//     spec.replicas where an autoscaler owns the count; every
//     PodDisruptionBudget allows an eviction at the lowest replica count
//     (autoscaler minimum), so node drains go through; the broker's memory
//     limit holds its flags' budget (queues x (--mem-queue-bytes +
//     --max-msg-size) + workers x --max-in-flight x --max-msg-size + base);
//     every container image comes from the one kustomize `images:` entry of
//     k8s/base, and changing that entry changes every rendered image;
//   - every --flag (and NSQ_* variable) that the manifests, the Dockerfile,
//     the systemd units, the example env files, the README's shell blocks
//     and `deploy/cluster.sh up --dry-run` give our binaries is one that
//     `BINARY --help` lists;
//   - the Dockerfile's shape (stages, runtime packages, user, ports, volume,
//     health check) and .dockerignore.
// Binaries come from NSQ_BROKER_BIN, NSQ_WORKER_BIN, NSQ_LOOKUPD_BIN (meson
// sets them). Run with --self-test to check that broken input is caught.
// Exit status 0 when everything holds, 1 otherwise.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

let YAML, MODELS;
try {
    YAML = require('yaml');
    MODELS = path.dirname(require.resolve('kubernetes-models/package.json'));
} catch (e) {
    console.log(`SKIP: ${e.message.split('\n')[0]}; run scripts/install-deps.sh ` +
                '(npm ci in tests/deploy)');
    process.exit(77);  // meson's "skipped"
}
const ROOT = path.resolve(__dirname, '..', '..');
const NODE_MODULES = path.dirname(MODELS);

const errors = [];
const notes = new Set();
let checks = 0;
function fail(where, message) { errors.push(`${where}: ${message}`); }
function note(message) { notes.add(message); }

// ---- type declarations of kubernetes-models: property names per type ----

const interfaces = new Map();  // .d.ts path -> Map(prop -> {type, inline, array}) or null

function resolveImport(fromFile, spec) {
    const base = spec.startsWith('.') ? path.resolve(path.dirname(fromFile), spec)
                                      : path.join(NODE_MODULES, spec);
    return base + '.d.ts';
}

// Parses the properties of one type block (the lines after its `{`) at
// the given indent: each with the .d.ts of its type when that is a model
// (directly or in Array<>), or the properties of an inline object type.
// Returns [Map or null for a map type, index after the closing line].
function parseBlock(lines, i, indent, imports) {
    const props = new Map();
    let isMap = false;
    const close = new RegExp(`^ {${indent - 4}}\\}`);
    const property = new RegExp(`^ {${indent}}"([^"]+)"\\??: (.*)$`);
    while (i < lines.length && !close.test(lines[i])) {
        const m = property.exec(lines[i]);
        if (lines[i].startsWith(' '.repeat(indent) + '[key: '))
            isMap = true;
        if (!m) {
            i++;
            continue;
        }
        const type = m[2].replace(/;$/, '');
        const array = type.startsWith('Array<');
        if (type.endsWith('{')) {
            const [inline, next] = parseBlock(lines, i + 1, indent + 4, imports);
            props.set(m[1], { type: null, inline, array });
            i = next;
            continue;
        }
        const name = array ? type.slice(6, -1) : type;
        props.set(m[1], { type: imports.get(name) || null, inline: null, array });
        i++;
    }
    return [isMap ? null : props, i + 1];
}

// The properties of the first `export interface` of a .d.ts, or null.
function loadInterface(file) {
    if (interfaces.has(file))
        return interfaces.get(file);
    let result = null;
    if (fs.existsSync(file)) {
        const text = fs.readFileSync(file, 'utf8');
        const imports = new Map();
        for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm))
            imports.set(m[1], resolveImport(file, m[2]));
        const lines = text.split('\n');
        const start = lines.findIndex(l => /^export interface \w+(?: extends [\w, ]+)? \{$/.test(l));
        if (start >= 0)
            result = parseBlock(lines, start + 1, 4, imports)[0];
    }
    interfaces.set(file, result);
    return result;
}

// Reports every key the type does not declare, at any depth.
function checkFields(value, props, where) {
    if (!props || value === null || typeof value !== 'object' || Array.isArray(value))
        return;
    for (const [key, child] of Object.entries(value)) {
        const prop = props.get(key);
        if (!prop) {
            fail(where, `unknown field "${key}"`);
            continue;
        }
        const inner = prop.inline || (prop.type && loadInterface(prop.type));
        if (prop.array && Array.isArray(child))
            child.forEach((item, i) => checkFields(item, inner, `${where}.${key}[${i}]`));
        else if (!prop.array)
            checkFields(child, inner, `${where}.${key}`);
    }
}

// ---- schema validation of one object ----

function modelPath(apiVersion, kind) {
    const group = apiVersion.includes('/') ? apiVersion : `v1`;
    return path.join(MODELS, group, kind);
}

function validateObject(doc, where) {
    if (!doc || typeof doc !== 'object' || !doc.apiVersion || !doc.kind) {
        fail(where, 'not a Kubernetes object (apiVersion and kind are required)');
        return;
    }
    where = `${where} ${doc.kind}/${doc.metadata && doc.metadata.name}`;
    checks++;
    if (doc.apiVersion.startsWith('keda.sh/')) {
        checkScaledObject(doc, where);
        return;
    }
    const file = modelPath(doc.apiVersion, doc.kind);
    let Model;
    try {
        Model = require(file)[doc.kind];
    } catch (e) {
        fail(where, `no schema for ${doc.apiVersion} ${doc.kind}`);
        return;
    }
    try {
        new Model(doc).validate();
    } catch (e) {
        fail(where, `schema: ${e.message.split('\n').slice(0, 4).join(' ')}`);
    }
    checkFields(doc, loadInterface(file + '.d.ts'), where);
}

// KEDA ships no schema package: check the fields we rely on by hand.
const SCALED_OBJECT_SPEC = ['scaleTargetRef', 'pollingInterval', 'cooldownPeriod',
    'idleReplicaCount', 'minReplicaCount', 'maxReplicaCount', 'fallback', 'advanced',
    'triggers', 'initialCooldownPeriod'];
const NSQ_SCALER = ['nsqLookupdHTTPAddresses', 'topic', 'channel', 'depthThreshold',
    'activationDepthThreshold', 'useHttps', 'unsafeSsl'];

function checkScaledObject(doc, where) {
    if (doc.apiVersion !== 'keda.sh/v1alpha1' || doc.kind !== 'ScaledObject')
        return fail(where, 'only keda.sh/v1alpha1 ScaledObject is known');
    for (const key of Object.keys(doc))
        if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(key))
            fail(where, `unknown field "${key}"`);
    const spec = doc.spec || {};
    for (const key of Object.keys(spec))
        if (!SCALED_OBJECT_SPEC.includes(key))
            fail(where, `unknown field "spec.${key}"`);
    if (!spec.scaleTargetRef || typeof spec.scaleTargetRef.name !== 'string')
        fail(where, 'spec.scaleTargetRef.name is required');
    for (const key of ['minReplicaCount', 'maxReplicaCount', 'pollingInterval', 'cooldownPeriod'])
        if (key in spec && !Number.isInteger(spec[key]))
            fail(where, `spec.${key} must be an integer`);
    if (!Array.isArray(spec.triggers) || spec.triggers.length === 0)
        return fail(where, 'spec.triggers is required');
    spec.triggers.forEach((trigger, i) => {
        const at = `${where} spec.triggers[${i}]`;
        if (trigger.type !== 'nsq')
            return fail(at, `type ${trigger.type}: only the nsq scaler is used here`);
        const metadata = trigger.metadata || {};
        for (const [key, value] of Object.entries(metadata)) {
            if (!NSQ_SCALER.includes(key))
                fail(at, `unknown nsq scaler metadata "${key}"`);
            if (typeof value !== 'string')
                fail(at, `metadata.${key} must be a string (KEDA reads strings)`);
        }
        for (const key of ['nsqLookupdHTTPAddresses', 'topic', 'channel'])
            if (!metadata[key])
                fail(at, `metadata.${key} is required`);
        if (metadata.depthThreshold && !/^[1-9][0-9]*$/.test(metadata.depthThreshold))
            fail(at, 'metadata.depthThreshold must be a positive integer');
        for (const address of String(metadata.nsqLookupdHTTPAddresses || '').split(','))
            if (!/^[a-z0-9.-]+:[0-9]+$/.test(address))
                fail(at, `nsqLookupdHTTPAddresses: "${address}" is not host:port`);
    });
}

// ---- reading manifests ----

function yamlFiles(dir) {
    const out = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory())
            out.push(...yamlFiles(full));
        else if (/\.ya?ml$/.test(entry.name))
            out.push(full);
    }
    return out.sort();
}

function parseDocuments(text, where) {
    const docs = [];
    for (const document of YAML.parseAllDocuments(text)) {
        if (document.errors.length) {
            fail(where, `YAML: ${document.errors[0].message}`);
            continue;
        }
        const value = document.toJS();
        if (value !== null)
            docs.push(value);
    }
    return docs;
}

const KUSTOMIZATION_FIELDS = ['apiVersion', 'kind', 'namespace', 'namePrefix', 'nameSuffix',
    'labels', 'commonLabels', 'commonAnnotations', 'resources', 'components', 'images',
    'patches', 'configMapGenerator', 'secretGenerator', 'generatorOptions', 'replicas'];

function checkKustomization(doc, file) {
    checks++;
    for (const key of Object.keys(doc))
        if (!KUSTOMIZATION_FIELDS.includes(key))
            fail(file, `unknown kustomization field "${key}"`);
    for (const resource of doc.resources || [])
        if (!fs.existsSync(path.resolve(path.dirname(file), resource)))
            fail(file, `resource ${resource} does not exist`);
}

// ---- command lines: which binary, which flags ----

// Splits a shell line into words (quotes kept out, enough for our lines).
function shellWords(line) {
    return (line.match(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g) || []).map(w => w.replace(/["']/g, ''));
}

// Returns [{binary, flags: [name...]}] for a command line given as words.
function commandLines(words, where) {
    const found = [];
    let current = null;
    for (const word of words) {
        const m = /(?:^|\/)(nsq-(?:broker|lookupd|worker|bench))$/.exec(word);
        if (m) {
            current = { binary: m[1], flags: [], where };
            found.push(current);
        } else if (current && /^--[a-z]/.test(word)) {
            current.flags.push(word.slice(2).split('=')[0]);
        } else if (/^(?:&&|\|\||;|\|)$/.test(word)) {
            current = null;
        }
    }
    return found;
}

// The words a container runs: sh -c SCRIPT $0 ARGS... counts as both.
function containerWords(container) {
    const words = [...(container.command || []), ...(container.args || [])];
    const c = words.indexOf('-c');
    if (/(^|\/)(ba)?sh$/.test(words[0] || '') && c >= 0 && c + 1 < words.length)
        return [...shellWords(words[c + 1]), ...words.slice(c + 2)];
    if (words.length === 0)
        return ['nsq-broker', '--data-path=/data'];  // the image's CMD
    return words;
}

// NSQ_BROKER_MEM_QUEUE_SIZE is --mem-queue-size of nsq-broker.
function envFlag(name) {
    const m = /^NSQ_(BROKER|LOOKUPD|WORKER)_([A-Z0-9_]+)$/.exec(name);
    return m ? { binary: `nsq-${m[1].toLowerCase()}`, flag: m[2].toLowerCase().replace(/_/g, '-') }
             : null;
}

const helpCache = new Map();

function acceptedFlags(binary) {
    if (helpCache.has(binary))
        return helpCache.get(binary);
    const variable = `NSQ_${binary.slice(4).toUpperCase()}_BIN`;
    let file = process.env[variable];
    if (!file && process.env.BUILD_ROOT)
        file = path.join(process.env.BUILD_ROOT, binary.slice(4), binary);
    let flags = null;
    if (file && fs.existsSync(file)) {
        const run = spawnSync(file, ['--help'], { encoding: 'utf8', timeout: 10000 });
        const text = `${run.stdout}${run.stderr}`;
        flags = new Set([...text.matchAll(/^\s+--([a-z0-9-]+)/gm)].map(m => m[1]));
        if (flags.size === 0)
            fail(binary, `${file} --help lists no flags`);
    } else {
        note(`SKIP: flags of ${binary} not checked: ${file || '$' + variable} does not exist` +
             ' (not built on this branch)');
    }
    helpCache.set(binary, flags);
    return flags;
}

function checkFlag(binary, flag, where) {
    const accepted = acceptedFlags(binary);
    if (!accepted)
        return;
    checks++;
    if (accepted.has(flag))
        return;
    fail(where, `${binary} does not accept --${flag}`);
}

function checkCommandLines(lines) {
    for (const line of lines)
        for (const flag of line.flags)
            checkFlag(line.binary, flag, line.where);
}

// ---- cross-references between the objects of one rendering ----

function podTemplates(docs) {
    return docs.filter(d => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(d.kind) &&
                            d.spec && d.spec.template);
}

function labelsMatch(selector, labels) {
    return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}

function checkReferences(docs, where) {
    checks++;
    const workloads = podTemplates(docs);
    const byName = (kind, name) => docs.find(d => d.kind === kind && d.metadata.name === name);
    for (const w of workloads) {
        const at = `${where} ${w.kind}/${w.metadata.name}`;
        const labels = w.spec.template.metadata && w.spec.template.metadata.labels;
        if (!labelsMatch(w.spec.selector && w.spec.selector.matchLabels, labels))
            fail(at, 'spec.selector does not match the pod template labels');
        if (w.kind === 'StatefulSet') {
            const service = byName('Service', w.spec.serviceName);
            if (!service || service.spec.clusterIP !== 'None')
                fail(at, `serviceName ${w.spec.serviceName} is not a headless Service here`);
        }
        for (const c of w.spec.template.spec.containers) {
            const ports = new Set((c.ports || []).flatMap(p => [p.name, p.containerPort]));
            for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
                const get = c[probe] && c[probe].httpGet;
                if (get && !ports.has(get.port))
                    fail(at, `${probe} port ${get.port} is not a container port`);
            }
            const mounts = (c.volumeMounts || []).map(m => m.name);
            const volumes = [...(w.spec.template.spec.volumes || []).map(v => v.name),
                             ...(w.spec.volumeClaimTemplates || []).map(v => v.metadata.name)];
            for (const m of mounts)
                if (!volumes.includes(m))
                    fail(at, `volumeMount ${m} has no volume`);
            checkAddresses(docs, containerWords(c), at);
        }
    }
    for (const s of docs.filter(d => d.kind === 'Service')) {
        const at = `${where} Service/${s.metadata.name}`;
        const targets = workloads.filter(w => labelsMatch(s.spec.selector,
                                                           w.spec.template.metadata.labels));
        if (targets.length === 0)
            fail(at, 'its selector matches no pod template');
        for (const port of s.spec.ports || []) {
            const named = targets.some(w => w.spec.template.spec.containers.some(
                c => (c.ports || []).some(p => p.name === port.targetPort ||
                                               p.containerPort === (port.targetPort || port.port))));
            if (targets.length && !named)
                fail(at, `targetPort ${port.targetPort} is no container port of its pods`);
        }
    }
    for (const d of docs) {
        const at = `${where} ${d.kind}/${d.metadata.name}`;
        let target = null;
        if (d.kind === 'HorizontalPodAutoscaler')
            target = byName(d.spec.scaleTargetRef.kind, d.spec.scaleTargetRef.name);
        else if (d.kind === 'ScaledObject')
            target = byName(d.spec.scaleTargetRef.kind || 'Deployment', d.spec.scaleTargetRef.name);
        else if (d.kind === 'PodDisruptionBudget')
            target = workloads.find(w => labelsMatch(d.spec.selector.matchLabels,
                                                     w.spec.template.metadata.labels));
        else
            continue;
        if (!target)
            fail(at, 'its target is not among the objects');
        else if (d.kind === 'ScaledObject')
            checkScalerMatchesWorker(d, target, docs, at);
    }
}

// host:port arguments naming pods of a StatefulSet (NAME-N.SERVICE[...]:PORT)
// must name an existing ordinal and a port that Service exposes.
function checkAddresses(docs, words, where) {
    for (const word of words) {
        const m = /=([a-z0-9-]+)-([0-9]+)\.([a-z0-9-]+)(?:\.[a-z0-9.-]+)?:([0-9]+)$/.exec(word);
        if (!m)
            continue;
        const set = docs.find(d => d.kind === 'StatefulSet' && d.metadata.name === m[1]);
        const service = docs.find(d => d.kind === 'Service' && d.metadata.name === m[3]);
        if (!set || !service)
            fail(where, `${word}: no StatefulSet ${m[1]} behind Service ${m[3]}`);
        else if (Number(m[2]) >= (set.spec.replicas || 1))
            fail(where, `${word}: ${m[1]} has only ${set.spec.replicas} replicas`);
        else if (!service.spec.ports.some(p => p.port === Number(m[4])))
            fail(where, `${word}: Service ${m[3]} has no port ${m[4]}`);
    }
}

function checkScalerMatchesWorker(scaled, deployment, docs, where) {
    const words = containerWords(deployment.spec.template.spec.containers[0]);
    const value = flag => (words.find(w => w.startsWith(`--${flag}=`)) || '').split('=')[1];
    for (const trigger of scaled.spec.triggers || []) {
        const metadata = trigger.metadata || {};
        if (metadata.topic !== value('topic') || metadata.channel !== value('channel'))
            fail(where, `scales on ${metadata.topic}/${metadata.channel} but the worker consumes ` +
                        `${value('topic')}/${value('channel')}`);
        const addresses = String(metadata.nsqLookupdHTTPAddresses || '').split(',');
        checkAddresses(docs, addresses.map(a => `=${a}`), where);
    }
}

// ---- what a real cluster needs ----

// The HPAs and ScaledObjects that scale workload w.
function autoscalersOf(docs, w) {
    return docs.filter(d => {
        const ref = d.spec && d.spec.scaleTargetRef;
        if (!ref || ref.name !== w.metadata.name)
            return false;
        return (d.kind === 'HorizontalPodAutoscaler' && ref.kind === w.kind) ||
               (d.kind === 'ScaledObject' && (ref.kind || 'Deployment') === w.kind);
    });
}

// The fewest and the most replicas w may run: its autoscalers' bounds
// (HPA minReplicas defaults to 1, KEDA's minReplicaCount to 0 and
// maxReplicaCount to 100), or its spec.replicas (default 1).
function replicaRange(docs, w) {
    const scalers = autoscalersOf(docs, w);
    if (scalers.length === 0) {
        const n = w.spec.replicas === undefined ? 1 : w.spec.replicas;
        return { min: n, max: n, scalers };
    }
    const min = scalers.map(d => d.kind === 'ScaledObject' ? (d.spec.minReplicaCount || 0)
                                                           : (d.spec.minReplicas || 1));
    const max = scalers.map(d => d.kind === 'ScaledObject' ? (d.spec.maxReplicaCount || 100)
                                                           : d.spec.maxReplicas);
    return { min: Math.min(...min), max: Math.max(...max), scalers };
}

// An autoscaler owns the replica count: a spec.replicas beside it is reset
// on every `kubectl apply` and fights the autoscaler.
function checkScaleOwnership(docs, where) {
    checks++;
    for (const w of podTemplates(docs)) {
        const scalers = autoscalersOf(docs, w);
        if (scalers.length && w.spec.replicas !== undefined)
            fail(`${where} ${w.kind}/${w.metadata.name}`,
                 `sets spec.replicas although ${scalers[0].kind}/${scalers[0].metadata.name} ` +
                 'owns its count (every apply resets it): leave replicas out');
    }
}

// Pods a PodDisruptionBudget lets the eviction API remove out of n
// (Kubernetes rounds percentages up).
function disruptionsAllowed(spec, n) {
    const count = v => typeof v === 'string' && v.endsWith('%')
                           ? Math.ceil(parseFloat(v) * n / 100) : Number(v);
    if (spec.maxUnavailable !== undefined)
        return Math.min(count(spec.maxUnavailable), n);
    if (spec.minAvailable !== undefined)
        return Math.max(0, n - count(spec.minAvailable));
    return n;
}

// A budget that allows no eviction at the lowest replica count blocks
// every node drain (kubectl drain, cluster upgrades) while it lasts.
function checkDisruptionBudgets(docs, where) {
    checks++;
    const workloads = podTemplates(docs);
    for (const pdb of docs.filter(d => d.kind === 'PodDisruptionBudget')) {
        for (const w of workloads.filter(w => labelsMatch(pdb.spec.selector.matchLabels,
                                                          w.spec.template.metadata.labels))) {
            const { min } = replicaRange(docs, w);
            if (min >= 1 && disruptionsAllowed(pdb.spec, min) < 1)
                fail(`${where} PodDisruptionBudget/${pdb.metadata.name}`,
                     `allows no eviction when ${w.kind}/${w.metadata.name} runs ${min} ` +
                     'replica(s) (its lowest count): every node drain blocks; use maxUnavailable');
        }
    }
}

const MiB = 1024 * 1024;
// What a broker needs besides its queues and the messages in flight: an
// idle broker's RSS (about 13 MiB measured) plus requests being read.
const BROKER_BASE_MEMORY = 64 * MiB;
const QUEUES_ANNOTATION = 'nsq-zmq/memory-budget-queues';

// Bytes of a Kubernetes quantity ("768Mi", "1Gi", "500M"); NaN if unknown.
function quantityBytes(text) {
    const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(text));
    const units = { Ki: 1024, Mi: MiB, Gi: 1024 * MiB, Ti: 1024 * 1024 * MiB, k: 1e3, M: 1e6,
                    G: 1e9, T: 1e12 };
    return m ? Number(m[1]) * (m[2] ? units[m[2]] : 1) : NaN;
}

// Bytes of one of our SIZE flag values ("16m", "1048576"); NaN if invalid.
function sizeBytes(text) {
    const m = /^([0-9]+)([kKmMgG])?$/.exec(String(text));
    const units = { k: 1024, m: MiB, g: 1024 * MiB };
    return m ? Number(m[1]) * (m[2] ? units[m[2].toLowerCase()] : 1) : NaN;
}

// The value a container gives a daemon's flag (the flag wins over its
// NSQ_* variable, as in the binaries), or undefined.
function setting(container, binary, flag) {
    const words = containerWords(container);
    const given = words.filter(w => w.startsWith(`--${flag}=`)).pop();
    if (given)
        return given.slice(flag.length + 3);
    const variable = `NSQ_${binary.slice(4).toUpperCase()}_${flag.toUpperCase().replace(/-/g, '_')}`;
    const env = (container.env || []).find(e => e.name === variable && e.value !== undefined);
    return env ? env.value : undefined;
}

function runs(container, binary) {
    return containerWords(container).some(w => new RegExp(`(^|/)${binary}$`).test(w));
}

// The broker's memory limit must hold what its flags let it keep: each
// queue (topic or channel, as many as the workload's annotation budgets)
// up to --mem-queue-bytes plus a disk read buffer of up to --max-msg-size,
// every worker pod's --max-in-flight messages of --max-msg-size in
// flight, and a base.
function checkBrokerMemory(docs, where) {
    checks++;
    const workloads = podTemplates(docs);
    for (const w of workloads) {
        for (const c of w.spec.template.spec.containers.filter(c => runs(c, 'nsq-broker'))) {
            const at = `${where} ${w.kind}/${w.metadata.name} ${c.name}`;
            const queueBytes = sizeBytes(setting(c, 'nsq-broker', 'mem-queue-bytes'));
            const msgSize = sizeBytes(setting(c, 'nsq-broker', 'max-msg-size') || '1m');
            const queues = Number((w.metadata.annotations || {})[QUEUES_ANNOTATION]);
            const limit = quantityBytes(((c.resources || {}).limits || {}).memory);
            if (Number.isNaN(queueBytes))
                fail(at, 'no valid --mem-queue-bytes: nothing bounds the memory its queues take');
            if (Number.isNaN(msgSize))
                fail(at, 'no valid --max-msg-size');
            if (!Number.isInteger(queues) || queues < 1)
                fail(at, `no annotation ${QUEUES_ANNOTATION}: how many topics and channels ` +
                         'its memory is sized for');
            if (Number.isNaN(limit))
                fail(at, 'no resources.limits.memory');
            let inFlight = 0;
            const parts = [];
            for (const consumer of workloads) {
                for (const wc of consumer.spec.template.spec.containers) {
                    if (!runs(wc, 'nsq-worker'))
                        continue;
                    const credit = Number(setting(wc, 'nsq-worker', 'max-in-flight'));
                    const { max } = replicaRange(docs, consumer);
                    if (!Number.isInteger(credit) || credit < 1)
                        fail(`${where} ${consumer.kind}/${consumer.metadata.name}`,
                             'set --max-in-flight: the brokers\' memory budget counts it');
                    inFlight += max * credit * msgSize;
                    parts.push(`${max} x ${credit} x ${msgSize / MiB} MiB in flight`);
                }
            }
            const need = queues * (queueBytes + msgSize) + inFlight + BROKER_BASE_MEMORY;
            if (need > limit)
                fail(at, `memory limit ${(limit / MiB).toFixed(0)} MiB is below its budget ` +
                         `${(need / MiB).toFixed(0)} MiB = ${queues} queues x ` +
                         `(${queueBytes / MiB} + ${msgSize / MiB}) MiB + ${parts.join(' + ') || '0'}` +
                         ` + ${BROKER_BASE_MEMORY / MiB} MiB base`);
        }
    }
}

// The images: entry of k8s/base/kustomization.yaml, the one place that
// names the registry and tag.
function baseImage() {
    const file = path.join(ROOT, 'k8s', 'base', 'kustomization.yaml');
    const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
    const images = doc.images || [];
    if (images.length !== 1 || !images[0].name || !images[0].newTag) {
        fail('k8s/base/kustomization.yaml', 'needs one images: entry with name and newTag ' +
                                            '(where users set their registry and tag)');
        return null;
    }
    return images[0];
}

function containersOf(w) {
    return [...(w.spec.template.spec.initContainers || []), ...w.spec.template.spec.containers];
}

// Every container runs expected (the raw files: the bare name the images:
// entry rewrites; a rendering: the name and tag it writes).
function checkImages(docs, expected, where) {
    checks++;
    for (const w of podTemplates(docs))
        for (const c of containersOf(w))
            if (c.image !== expected)
                fail(`${where} ${w.kind}/${w.metadata.name} ${c.name}`,
                     `image ${c.image}, expected ${expected} (set through the images: entry ` +
                     'of k8s/base/kustomization.yaml)');
}

// Every check above on one set of objects.
function checkCluster(docs, where) {
    checkScaleOwnership(docs, where);
    checkDisruptionBudgets(docs, where);
    checkBrokerMemory(docs, where);
}

// ---- what is checked ----

function checkK8s() {
    const dir = path.join(ROOT, 'k8s');
    const all = [];
    for (const file of yamlFiles(dir)) {
        const rel = path.relative(ROOT, file);
        for (const doc of parseDocuments(fs.readFileSync(file, 'utf8'), rel)) {
            if (doc.kind === 'Kustomization' || doc.kind === 'Component') {
                checkKustomization(doc, file);
                continue;
            }
            validateObject(doc, rel);
            all.push(doc);
            for (const w of podTemplates([doc]))
                for (const c of w.spec.template.spec.containers) {
                    checkCommandLines(commandLines(containerWords(c), `${rel} ${c.name}`));
                    for (const e of c.env || []) {
                        const f = envFlag(e.name);
                        if (f)
                            checkFlag(f.binary, f.flag, `${rel} ${c.name} env ${e.name}`);
                    }
                }
        }
    }
    checkReferences(all, 'k8s/');
    checkCluster(all, 'k8s/');
    const image = baseImage();
    if (image)
        checkImages(all, image.name, 'k8s/');
    renderKustomizations(image);
}

// `kubectl kustomize DIR` (DIR under root) as objects; null if it failed.
function render(root, dir) {
    const run = spawnSync('kubectl', ['kustomize', path.join(root, dir)], { encoding: 'utf8' });
    checks++;
    if (run.status !== 0) {
        fail(`kubectl kustomize ${dir}`, run.stderr.trim());
        return null;
    }
    return parseDocuments(run.stdout, `kustomize ${dir}`);
}

// Users set registry and tag in one place: a copy of k8s/ whose base
// images: entry names another registry renders that image everywhere.
function checkImageOverride(image) {
    const tmp = fs.mkdtempSync(path.join(require('os').tmpdir(), 'check-manifests-'));
    try {
        fs.cpSync(path.join(ROOT, 'k8s'), path.join(tmp, 'k8s'), { recursive: true });
        const file = path.join(tmp, 'k8s', 'base', 'kustomization.yaml');
        const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
        const wanted = 'registry.example.com/team/nsq-zmq:9.9.9';
        doc.images = [{ name: image.name, newName: 'registry.example.com/team/nsq-zmq',
                        newTag: '9.9.9' }];
        fs.writeFileSync(file, YAML.stringify(doc));
        for (const dir of ['k8s', 'k8s/keda', 'k8s/secure']) {
            const docs = render(tmp, dir);
            if (docs)
                checkImages(docs, wanted, `kustomize ${dir} (registry set in k8s/base)`);
        }
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}

function renderKustomizations(image) {
    if (spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status !== 0) {
        note('SKIP: kubectl not found, `kubectl kustomize` renderings not checked');
        return;
    }
    for (const dir of ['k8s', 'k8s/keda', 'k8s/secure']) {
        const docs = render(ROOT, dir);
        if (!docs)
            continue;
        for (const doc of docs)
            validateObject(doc, `kustomize ${dir}`);
        checkReferences(docs, `kustomize ${dir}`);
        checkCluster(docs, `kustomize ${dir}`);
        if (image)
            checkImages(docs, `${image.newName || image.name}:${image.newTag}`, `kustomize ${dir}`);
        for (const w of image ? podTemplates(docs) : [])
            for (const c of containersOf(w))
                if (!/^(localhost|[^/]*[.:][^/]*)\//.test(c.image))
                    fail(`kustomize ${dir} ${w.kind}/${w.metadata.name} ${c.name}`,
                         `image ${c.image} names no registry: a real cluster cannot pull it ` +
                         '(set newName in the images: entry of k8s/base/kustomization.yaml)');
        const hpas = docs.filter(d => d.kind === 'HorizontalPodAutoscaler').length;
        const scaled = docs.filter(d => d.kind === 'ScaledObject').length;
        if (hpas + scaled !== 1)
            fail(`kustomize ${dir}`, `${hpas} HPA and ${scaled} ScaledObject: the workers need ` +
                                     'exactly one autoscaler');
        for (const d of docs.filter(d => d.kind !== 'Namespace'))
            if (d.metadata.namespace !== 'nsq')
                fail(`kustomize ${dir}`, `${d.kind}/${d.metadata.name} is not in namespace nsq`);
    }
    if (image)
        checkImageOverride(image);
}

function checkDockerfile() {
    const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
    const lines = text.split('\n').filter(l => l.trim() && !l.trim().startsWith('#'));
    const where = 'Dockerfile';
    checks++;
    const froms = lines.filter(l => /^FROM /.test(l));
    if (froms.length !== 2 || !froms.every(l => /^FROM debian:bookworm-slim\b/.test(l)))
        fail(where, 'expected two stages, both FROM debian:bookworm-slim');
    const runtime = text.slice(text.lastIndexOf('\nFROM '));
    const installs = [...runtime.matchAll(/apt-get install ([^&]*)/g)].map(m => m[1]).join(' ');
    const packages = installs.split(/\s+/).filter(w => w && !w.startsWith('-'));
    const allowed = ['libzmq5', 'libczmq4', 'libprotobuf-c1', 'libcurl4', 'libmicrohttpd12',
                     'libjansson4', 'zlib1g', 'libsnappy1v5', 'libgnutls30', 'libjemalloc2', 'curl',
                     'ca-certificates'];
    for (const p of packages)
        if (!allowed.includes(p))
            fail(where, `runtime stage installs ${p} (only runtime libraries belong there)`);
    for (const p of allowed.slice(0, 10))
        if (!packages.includes(p))
            fail(where, `runtime stage does not install ${p}`);
    const user = (runtime.match(/^USER (\S+)/m) || [])[1];
    if (!user || user === 'root' || user === '0')
        fail(where, 'the runtime stage must switch to a non-root USER');
    const exposed = ((runtime.match(/^EXPOSE (.*)$/m) || [])[1] || '').split(/\s+/);
    for (const port of ['4150', '4151', '4152', '4160', '4161', '4171'])
        if (!exposed.includes(port))
            fail(where, `EXPOSE lacks ${port}`);
    if (!/^VOLUME \/data\b/m.test(runtime))
        fail(where, 'VOLUME /data is missing');
    if (!/^HEALTHCHECK /m.test(runtime))
        fail(where, 'HEALTHCHECK is missing');
    const cmd = (runtime.match(/^CMD (\[.*\])$/m) || [])[1];
    if (cmd)
        checkCommandLines(commandLines(JSON.parse(cmd), 'Dockerfile CMD'));
    const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const pattern of ['build*/', '.git', '**/node_modules'])
        if (!ignore.includes(pattern))
            fail('.dockerignore', `does not exclude ${pattern}`);
}

function checkDeployFiles() {
    const deploy = path.join(ROOT, 'deploy');
    const units = path.join(deploy, 'systemd');
    for (const name of fs.existsSync(units) ? fs.readdirSync(units).sort() : []) {
        const text = fs.readFileSync(path.join(units, name), 'utf8').replace(/\\\n/g, ' ');
        for (const m of text.matchAll(/^ExecStart=(.*)$/gm))
            checkCommandLines(commandLines(shellWords(m[1]), `deploy/systemd/${name}`));
        for (const m of text.matchAll(/^Environment="?([A-Z0-9_]+)=/gm)) {
            const f = envFlag(m[1]);
            if (f)
                checkFlag(f.binary, f.flag, `deploy/systemd/${name} ${m[1]}`);
        }
    }
    const examples = path.join(deploy, 'examples');
    for (const name of fs.existsSync(examples) ? fs.readdirSync(examples).sort() : []) {
        const text = fs.readFileSync(path.join(examples, name), 'utf8');
        for (const m of text.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)) {
            const f = envFlag(m[1]);
            if (f)
                checkFlag(f.binary, f.flag, `deploy/examples/${name} ${m[1]}`);
            else if (m[1].startsWith('NSQ_'))
                fail(`deploy/examples/${name}`, `${m[1]} is no daemon's variable`);
        }
    }
    // Command lines in the README's shell blocks.
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const block of readme.matchAll(/^ *```sh\n([\s\S]*?)^ *```/gm))
        for (const line of block[1].replace(/\\\n/g, ' ').split('\n'))
            checkCommandLines(commandLines(shellWords(line.replace(/#.*$/, '')), 'README.md'));
    const dry = spawnSync('bash', [path.join(deploy, 'cluster.sh'), 'up', '--dry-run', '--dir',
                                   '/nonexistent/cluster', '--lookupds', '2'],
                          { encoding: 'utf8' });
    checks++;
    if (dry.status !== 0)
        return fail('deploy/cluster.sh up --dry-run', dry.stderr.trim() || `exit ${dry.status}`);
    for (const line of dry.stdout.split('\n').filter(Boolean))
        checkCommandLines(commandLines(shellWords(line), 'deploy/cluster.sh'));
}

// ---- self-test: broken input must be reported ----

function selfTest() {
    const broken = [
        ['unknown container field', `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i, readinesProbe: {httpGet: {path: /, port: 1}}}]
`, /unknown field "readinesProbe"/],
        ['wrong type', `
apiVersion: v1
kind: Service
metadata: {name: x}
spec: {ports: [{port: "http"}]}
`, /schema/],
        ['missing required field', `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: x}
spec: {serviceName: x}
`, /schema/],
        ['bad nsq scaler metadata', `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: x}
  triggers: [{type: nsq, metadata: {topic: t, channel: c, depthTreshold: "5",
              nsqLookupdHTTPAddresses: "a:4161"}}]
`, /unknown nsq scaler metadata "depthTreshold"/],
    ];
    let bad = 0;
    for (const [name, text, expected] of broken) {
        errors.length = 0;
        for (const doc of parseDocuments(text, name))
            validateObject(doc, name);
        const ok = errors.some(e => expected.test(e));
        console.log(`${ok ? 'ok' : 'NOT CAUGHT'}: ${name}${ok ? '' : ' ' + JSON.stringify(errors)}`);
        bad += ok ? 0 : 1;
    }
    errors.length = 0;
    helpCache.set('nsq-broker', new Set(['http-address']));
    checkCommandLines(commandLines(shellWords('nsq-broker --http-address=x --no-such-flag'), 'st'));
    const flagCaught = errors.length === 1 && /--no-such-flag/.test(errors[0]);
    console.log(`${flagCaught ? 'ok' : 'NOT CAUGHT'}: unknown flag`);
    bad += flagCaught ? 0 : 1;
    const clusters = clusterSelfTests();
    for (const [name, text, expected] of clusters) {
        errors.length = 0;
        const docs = parseDocuments(text, name);
        checkCluster(docs, name);
        checkImages(docs, 'nsq-zmq', name);
        const ok = expected.test(errors.join('\n'));
        console.log(`${ok ? 'ok' : 'NOT CAUGHT'}: ${name}${ok ? '' : ' ' + JSON.stringify(errors)}`);
        bad += ok ? 0 : 1;
    }
    const total = broken.length + 1 + clusters.length;
    console.log(`self-test: ${total - bad} passed, ${bad} failed`);
    process.exit(bad ? 1 : 0);
}

// Object sets that a real cluster would trip over, and what must be said.
function clusterSelfTests() {
    const worker = (extra, args) => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  ${extra}
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      containers: [{name: c, image: nsq-zmq, command: [nsq-worker], args: [${args}]}]
`;
    const keda = min => `
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: w}
spec: {scaleTargetRef: {name: w}, minReplicaCount: ${min}, maxReplicaCount: 4, triggers: []}
`;
    const broker = (limit, queues) => `
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: b, annotations: {nsq-zmq/memory-budget-queues: "${queues}"}}
spec:
  serviceName: b
  replicas: 2
  selector: {matchLabels: {app: b}}
  template:
    metadata: {labels: {app: b}}
    spec:
      containers:
        - name: c
          image: nsq-zmq
          command: [nsq-broker]
          args: [--mem-queue-bytes=16m, --max-msg-size=1m]
          resources: {limits: {memory: ${limit}}}
`;
    const pdb = spec => `
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: p}
spec: {${spec}, selector: {matchLabels: {app: w}}}
`;
    return [
        ['replicas beside an autoscaler', worker('replicas: 2', '--max-in-flight=1') + keda(1),
         /sets spec.replicas although ScaledObject\/w owns its count/],
        ['PDB minAvailable 1 at KEDA minimum 1',
         worker('', '--max-in-flight=1') + keda(1) + pdb('minAvailable: 1'),
         /allows no eviction when Deployment\/w runs 1 replica/],
        ['PDB minAvailable 100% of a fixed count',
         worker('replicas: 3', '--max-in-flight=1') + pdb('minAvailable: "100%"'),
         /allows no eviction when Deployment\/w runs 3 replica/],
        // 8 x 17 MiB + 4 x 50 x 1 MiB + 64 MiB = 400 MiB
        ['broker limit below its flags',
         worker('', '--max-in-flight=50') + keda(0) + broker('384Mi', 8),
         /memory limit 384 MiB is below its budget 400 MiB/],
        ['broker without a budget annotation', broker('1Gi', ''),
         /no annotation nsq-zmq\/memory-budget-queues/],
        ['image not set through images:',
         worker('', '--max-in-flight=1').replace('image: nsq-zmq', 'image: nsq-zmq:latest'),
         /image nsq-zmq:latest, expected nsq-zmq/],
        ['a budget that fits is accepted',
         worker('', '--max-in-flight=50') + keda(0) + pdb('maxUnavailable: 1') +
             broker('400Mi', 8),
         /^$/],
    ];
}

function main() {
    if (process.argv.includes('--self-test'))
        return selfTest();
    checkK8s();
    checkDockerfile();
    checkDeployFiles();
    for (const n of notes)
        console.log(n);
    for (const e of errors)
        console.log(`ERROR ${e}`);
    console.log(`check_manifests: ${checks} checks, ${errors.length} errors`);
    process.exit(errors.length ? 1 : 0);
}

main();
