#!/usr/bin/env node
// Mock OpenAI-compatible server for Chainette benchmarks and fault tests.
// Node's built-in `http` only (no npm dependencies); one process, one core, several thousand
// requests/s, so the client under test -- not this server -- is the bottleneck.
//
// USAGE
//   node benchmarks/mock_server.js [--port 0] [--host 127.0.0.1] [--latency-ms 0]
//        [--latency-dist fixed|lognormal] [--p99-ratio 20] [--seed 1]
//        [--error-rate 0] [--error-kinds 500,429,...] [--error-mode counter|random|hash]
//        [--retry-after-s 1] [--timeout-hold-ms 600000] [--request-log FILE] [--model mock]
//   Every flag may also be given as an env var: MOCK_PORT, MOCK_LATENCY_MS, MOCK_LATENCY_DIST,
//   MOCK_P99_RATIO, MOCK_SEED, MOCK_ERROR_RATE, MOCK_ERROR_KINDS, MOCK_ERROR_MODE,
//   MOCK_RETRY_AFTER_S, MOCK_TIMEOUT_HOLD_MS, MOCK_REQUEST_LOG, MOCK_MODEL, MOCK_HOST.
//   On start it prints exactly one line `LISTENING <port>` on stdout (useful with --port 0).
//   Stop it with SIGTERM/SIGINT (by PID); it closes its log and exits 0.
//
// ENDPOINTS
//   GET  /health                      -> 200 {"status":"ok"}
//   GET  /v1/models, /models          -> 200 OpenAI model list containing --model (default "mock")
//   POST /v1/chat/completions, /chat/completions
//        -> 200 chat.completion whose choices[0].message.content is a JSON string that fills the
//           request's JSON schema, taken from (first found) response_format.json_schema.schema,
//           structured_outputs.json, guided_json, or response_format.schema. With no schema the
//           content is plain text "mock reply <hash8>" (json_object mode: "{}").
//           Values are a deterministic function of the messages (sha1 of JSON.stringify(messages)):
//           the same messages always get the same content. Schema support (minimal): object
//           (all properties, required or not), string, number, integer, boolean, null, array (2
//           items unless minItems/maxItems say otherwise), enum, const, $ref to #/$defs or
//           #/definitions, anyOf/oneOf (first non-null option), allOf (merged), type lists.
//           usage: prompt_tokens = ceil(chars of all message contents / 4),
//                  completion_tokens = ceil(chars of content / 4).
//           Response headers include x-ratelimit-limit/remaining-requests/tokens (huge values) so
//           clients that read rate-limit headers (e.g. Curator) do not throttle.
//   GET  /stats                       -> 200 {"requests","chat","ok","faults":{kind:n},
//                                           "in_flight","max_in_flight","started_at","uptime_s"}
//   POST /reset                       -> zeroes the counters of /stats and the fault counter and
//                                        reseeds the PRNGs: the next client sees exactly the same
//                                        latency / fault sequence as the first one did.
//   anything else                     -> 404 OpenAI-style error JSON.
//
// LATENCY (applied to every chat request before replying, including faults except `timeout`)
//   fixed:     every request waits --latency-ms.
//   lognormal: median = --latency-ms, p99 = --p99-ratio x median, i.e.
//              latency = median * exp(sigma * Z), sigma = ln(p99_ratio) / 2.3263, Z ~ N(0,1)
//              drawn from a PRNG seeded with --seed (deterministic sequence per server run).
//   Per-request override: header `x-mock-latency-ms: <ms>`.
//
// FAULTS (only on chat-completion requests; n = 1-based chat request counter since start/reset)
//   Which requests fail (--error-mode):
//     counter (default): exactly floor(n*rate) - floor((n-1)*rate) == 1 marks request n faulty, so
//               faults are evenly spread and a fraction `rate` of every window fails; the kind is
//               kinds[(fault_index) % kinds.length] (fault_index counts faults from 0). A retry of
//               a failed request is a new request n+1, so transient faults heal on retry.
//     random:   faulty with probability `rate` from the PRNG seeded by --seed; kind = PRNG pick.
//     hash:     faulty iff the messages' hash (first 8 hex digits / 2^32) < rate; kind picked by
//               the hash. The SAME messages always fail the same way: a permanent fault, retries
//               never heal it.
//   Per-request override: header `x-mock-fault: <kind>` forces that kind (`none` forces success).
//   Kinds:
//     500, 502, 503   HTTP status with body {"error":{"message","type":"server_error","code":<s>}}
//     429             HTTP 429, body {"error":{"type":"rate_limit_error",...}}, no Retry-After
//     429-retry-after HTTP 429 with header `Retry-After: <--retry-after-s>` (default 1)
//     timeout         no response at all: the socket is held open for --timeout-hold-ms
//                     (default 600000) or until the client gives up, then destroyed.
//     reset           after the latency, the TCP connection is destroyed with no response bytes.
//     truncated       200 with Content-Length of the full body, only the first half of the body
//                     is written, then the connection is destroyed.
//     bad-body        200, content-type application/json, but the HTTP body is not JSON.
//     invalid-json    200, valid envelope, message.content is not parseable JSON (cut in half),
//                     finish_reason "length".
//     schema-invalid  200, valid envelope, content is valid JSON that violates the schema: an
//                     object with every required property removed and {"unexpected": true}
//                     (for a non-object schema: the string "not-valid").
//     empty           200, valid envelope, content "" and finish_reason "stop".
//
// REQUEST LOG (--request-log FILE): one JSON line appended per request, written when the outcome
//   is known: {"n": chat counter (0 for non-chat), "t": epoch ms at arrival, "method", "path",
//   "hash": sha1(JSON.stringify(messages)) first 16 hex (or null), "outcome": "ok" | <fault kind>
//   | "health" | "models" | "stats" | "not-found" | "bad-request", "status": HTTP status or null,
//   "latency_ms": applied delay}.
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');

// ---------------------------------------------------------------- configuration
function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) { opts[a.slice(2, eq)] = a.slice(eq + 1); continue; }
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) opts[a.slice(2)] = 'true';
    else { opts[a.slice(2)] = next; i++; }
  }
  return opts;
}
const args = parseArgs(process.argv.slice(2));
function opt(name, def) {
  if (args[name] !== undefined) return args[name];
  const env = 'MOCK_' + name.toUpperCase().replace(/-/g, '_');
  if (process.env[env] !== undefined) return process.env[env];
  return def;
}
const HOST = opt('host', '127.0.0.1');
const PORT = parseInt(opt('port', '0'), 10);
const LATENCY_MS = parseFloat(opt('latency-ms', '0'));
const LATENCY_DIST = opt('latency-dist', 'fixed');
const P99_RATIO = parseFloat(opt('p99-ratio', '20'));
const SEED = parseInt(opt('seed', '1'), 10);
const ERROR_RATE = parseFloat(opt('error-rate', '0'));
const ERROR_MODE = opt('error-mode', 'counter');
const RETRY_AFTER_S = opt('retry-after-s', '1');
const TIMEOUT_HOLD_MS = parseInt(opt('timeout-hold-ms', '600000'), 10);
const REQUEST_LOG = opt('request-log', '');
const MODEL = opt('model', 'mock');
const KNOWN_KINDS = ['500', '502', '503', '429', '429-retry-after', 'timeout', 'reset', 'truncated',
  'bad-body', 'invalid-json', 'schema-invalid', 'empty'];
const ERROR_KINDS = opt('error-kinds', '500').split(',').map((s) => s.trim()).filter(Boolean);
for (const k of ERROR_KINDS) {
  if (!KNOWN_KINDS.includes(k)) {
    process.stderr.write(`unknown error kind ${k}; known: ${KNOWN_KINDS.join(',')}\n`);
    process.exit(2);
  }
}
if (!['fixed', 'lognormal'].includes(LATENCY_DIST)) {
  process.stderr.write(`--latency-dist must be fixed or lognormal\n`);
  process.exit(2);
}
if (!['counter', 'random', 'hash'].includes(ERROR_MODE)) {
  process.stderr.write(`--error-mode must be counter, random or hash\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- deterministic PRNG
function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let latencyRng = mulberry32(SEED);
let faultRng = mulberry32(SEED ^ 0x9e3779b9);
const SIGMA = Math.log(Math.max(P99_RATIO, 1)) / 2.3263478740408408;
function gaussian(rng) {
  let u = 0;
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}
function drawLatency() {
  if (LATENCY_MS <= 0) return 0;
  if (LATENCY_DIST === 'fixed') return LATENCY_MS;
  return LATENCY_MS * Math.exp(SIGMA * gaussian(latencyRng));
}

// ---------------------------------------------------------------- stats and log
let stats;
function resetStats() {
  stats = { requests: 0, chat: 0, ok: 0, faults: {}, in_flight: 0, max_in_flight: 0,
    started_at: new Date().toISOString() };
}
resetStats();
let faultIndex = 0;
const startMs = Date.now();
const logStream = REQUEST_LOG ? fs.createWriteStream(REQUEST_LOG, { flags: 'a' }) : null;
function logLine(rec) {
  if (logStream) logStream.write(JSON.stringify(rec) + '\n');
}

// ---------------------------------------------------------------- schema filling
function hashInt(hash, salt) {
  // 32-bit value derived from the request hash and a per-field salt (FNV-1a over both).
  let h = 0x811c9dc5;
  const s = hash + ':' + salt;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
  return h >>> 0;
}
function resolveRef(ref, root) {
  const parts = ref.replace(/^#\//, '').split('/');
  let node = root;
  for (const p of parts) node = node && node[p];
  return node || {};
}
function fill(schema, root, hash, path, depth) {
  if (!schema || typeof schema !== 'object' || depth > 12) return null;
  if (schema.$ref) return fill(resolveRef(schema.$ref, root), root, hash, path, depth + 1);
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) {
    return schema.enum[hashInt(hash, path) % schema.enum.length];
  }
  const alts = schema.anyOf || schema.oneOf;
  if (Array.isArray(alts) && alts.length) {
    const pick = alts.find((s) => s && s.type !== 'null') || alts[0];
    return fill(pick, root, hash, path, depth + 1);
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length) {
    const merged = {};
    for (const part of schema.allOf) {
      const p = part.$ref ? resolveRef(part.$ref, root) : part;
      Object.assign(merged, p, { properties: Object.assign({}, merged.properties, p.properties) });
    }
    return fill(merged, root, hash, path, depth + 1);
  }
  let type = schema.type;
  if (Array.isArray(type)) type = type.find((t) => t !== 'null') || 'null';
  if (!type) type = schema.properties ? 'object' : (schema.items ? 'array' : 'string');
  const h = hashInt(hash, path);
  switch (type) {
    case 'object': {
      const out = {};
      const props = schema.properties || {};
      for (const key of Object.keys(props)) out[key] = fill(props[key], root, hash, path + '.' + key, depth + 1);
      return out;
    }
    case 'array': {
      let n = 2;
      if (typeof schema.minItems === 'number') n = Math.max(n, schema.minItems);
      if (typeof schema.maxItems === 'number') n = Math.min(n, schema.maxItems);
      const out = [];
      for (let i = 0; i < n; i++) out.push(fill(schema.items || {}, root, hash, path + '[' + i + ']', depth + 1));
      return out;
    }
    case 'string': {
      let s = 'mock-' + (h.toString(16).padStart(8, '0'));
      if (typeof schema.minLength === 'number') while (s.length < schema.minLength) s += 'x';
      if (typeof schema.maxLength === 'number') s = s.slice(0, schema.maxLength);
      return s;
    }
    case 'integer': {
      const lo = typeof schema.minimum === 'number' ? Math.ceil(schema.minimum) : 0;
      const hi = typeof schema.maximum === 'number' ? Math.floor(schema.maximum) : lo + 100;
      return lo + (h % (hi - lo + 1));
    }
    case 'number': {
      const lo = typeof schema.minimum === 'number' ? schema.minimum : 0;
      const hi = typeof schema.maximum === 'number' ? schema.maximum : lo + 1;
      return lo + ((h % 10000) / 10000) * (hi - lo);
    }
    case 'boolean': return (h & 1) === 1;
    case 'null': return null;
    default: return null;
  }
}
function extractSchema(body) {
  const rf = body.response_format;
  if (rf && rf.json_schema && rf.json_schema.schema) return rf.json_schema.schema;
  if (body.structured_outputs && body.structured_outputs.json) {
    const j = body.structured_outputs.json;
    return typeof j === 'string' ? JSON.parse(j) : j;
  }
  if (body.guided_json) return typeof body.guided_json === 'string' ? JSON.parse(body.guided_json) : body.guided_json;
  if (rf && rf.schema) return rf.schema;
  return null;
}

// ---------------------------------------------------------------- fault selection
function chooseFault(n, hash, headerFault) {
  if (headerFault) return headerFault === 'none' ? null : headerFault;
  if (!(ERROR_RATE > 0)) return null;
  if (ERROR_MODE === 'counter') {
    if (Math.floor(n * ERROR_RATE) - Math.floor((n - 1) * ERROR_RATE) < 1) return null;
    return ERROR_KINDS[(faultIndex++) % ERROR_KINDS.length];
  }
  if (ERROR_MODE === 'random') {
    if (faultRng() >= ERROR_RATE) return null;
    return ERROR_KINDS[Math.floor(faultRng() * ERROR_KINDS.length)];
  }
  // hash: permanent per message content
  const x = parseInt(hash.slice(0, 8), 16) / 4294967296;
  if (x >= ERROR_RATE) return null;
  return ERROR_KINDS[parseInt(hash.slice(8, 12), 16) % ERROR_KINDS.length];
}

// ---------------------------------------------------------------- responses
const RATE_HEADERS = {
  'x-ratelimit-limit-requests': '100000000',
  'x-ratelimit-remaining-requests': '99999999',
  'x-ratelimit-limit-tokens': '10000000000',
  'x-ratelimit-remaining-tokens': '9999999999',
};
function sendJson(res, status, obj, extraHeaders) {
  const body = JSON.stringify(obj);
  const headers = Object.assign({ 'content-type': 'application/json',
    'content-length': Buffer.byteLength(body) }, RATE_HEADERS, extraHeaders || {});
  res.writeHead(status, headers);
  res.end(body);
}
function errorBody(status, message, type) {
  return { error: { message, type, param: null, code: String(status) } };
}
function completionBody(n, model, content, finishReason, promptTokens) {
  return {
    id: 'chatcmpl-mock-' + n,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null,
      finish_reason: finishReason }],
    usage: { prompt_tokens: promptTokens, completion_tokens: Math.ceil(content.length / 4),
      total_tokens: promptTokens + Math.ceil(content.length / 4) },
  };
}

function handleChat(req, res, raw, arrival) {
  const n = ++stats.chat;
  let body;
  try { body = JSON.parse(raw); } catch (e) {
    logLine({ n, t: arrival, method: req.method, path: req.url, hash: null, outcome: 'bad-request', status: 400, latency_ms: 0 });
    return sendJson(res, 400, errorBody(400, 'request body is not JSON', 'invalid_request_error'));
  }
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const msgJson = JSON.stringify(messages);
  const hash = crypto.createHash('sha1').update(msgJson).digest('hex').slice(0, 16);
  let promptChars = 0;
  for (const m of messages) {
    if (typeof m.content === 'string') promptChars += m.content.length;
    else if (Array.isArray(m.content)) for (const p of m.content) if (p && typeof p.text === 'string') promptChars += p.text.length;
  }
  const promptTokens = Math.ceil(promptChars / 4);
  const headerFault = req.headers['x-mock-fault'];
  if (headerFault && headerFault !== 'none' && !KNOWN_KINDS.includes(headerFault)) {
    return sendJson(res, 400, errorBody(400, 'unknown x-mock-fault ' + headerFault, 'invalid_request_error'));
  }
  const fault = chooseFault(n, hash, headerFault);
  const hdrLatency = req.headers['x-mock-latency-ms'];
  const delay = hdrLatency !== undefined ? parseFloat(hdrLatency) : drawLatency();
  const outcome = fault || 'ok';
  let status = null;
  if (fault) stats.faults[fault] = (stats.faults[fault] || 0) + 1;

  stats.in_flight++;
  if (stats.in_flight > stats.max_in_flight) stats.max_in_flight = stats.in_flight;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    stats.in_flight--;
    logLine({ n, t: arrival, method: req.method, path: req.url, hash, outcome, status, latency_ms: Math.round(delay * 1000) / 1000 });
  };
  res.on('close', finish);

  if (fault === 'timeout') {
    const timer = setTimeout(() => { req.socket.destroy(); finish(); }, TIMEOUT_HOLD_MS);
    req.socket.on('close', () => { clearTimeout(timer); finish(); });
    return;
  }
  const reply = () => {
    if (res.destroyed || req.socket.destroyed) return finish();
    const model = body.model || MODEL;
    const schema = extractSchema(body);
    let content;
    let finishReason = 'stop';
    if (schema) content = JSON.stringify(fill(schema, schema, hash, '$', 0));
    else if (body.response_format && body.response_format.type === 'json_object') content = '{}';
    else content = 'mock reply ' + hash.slice(0, 8);
    switch (fault) {
      case null:
        status = 200; stats.ok++;
        return sendJson(res, 200, completionBody(n, model, content, finishReason, promptTokens));
      case '500': case '502': case '503':
        status = parseInt(fault, 10);
        return sendJson(res, status, errorBody(status, 'mock injected ' + fault, 'server_error'));
      case '429':
        status = 429;
        return sendJson(res, 429, errorBody(429, 'mock rate limit', 'rate_limit_error'));
      case '429-retry-after':
        status = 429;
        return sendJson(res, 429, errorBody(429, 'mock rate limit', 'rate_limit_error'), { 'retry-after': String(RETRY_AFTER_S) });
      case 'reset':
        req.socket.destroy();
        return finish();
      case 'truncated': {
        status = 200;
        const full = JSON.stringify(completionBody(n, model, content, finishReason, promptTokens));
        res.writeHead(200, Object.assign({ 'content-type': 'application/json', 'content-length': Buffer.byteLength(full) }, RATE_HEADERS));
        res.write(full.slice(0, Math.floor(full.length / 2)));
        setImmediate(() => { req.socket.destroy(); finish(); });
        return;
      }
      case 'bad-body': {
        status = 200;
        const bad = '{"id": "chatcmpl-mock-' + n + '", "choices": [ this is not json';
        res.writeHead(200, Object.assign({ 'content-type': 'application/json', 'content-length': Buffer.byteLength(bad) }, RATE_HEADERS));
        return res.end(bad);
      }
      case 'invalid-json':
        status = 200;
        return sendJson(res, 200, completionBody(n, model, content.slice(0, Math.max(1, Math.floor(content.length / 2))), 'length', promptTokens));
      case 'schema-invalid': {
        status = 200;
        let bad = '"not-valid"';
        const resolved = schema && schema.$ref ? resolveRef(schema.$ref, schema) : schema;
        if (resolved && (resolved.type === 'object' || resolved.properties)) {
          const obj = JSON.parse(content);
          for (const k of resolved.required || Object.keys(resolved.properties || {})) delete obj[k];
          obj.unexpected = true;
          bad = JSON.stringify(obj);
        }
        return sendJson(res, 200, completionBody(n, model, bad, finishReason, promptTokens));
      }
      case 'empty':
        status = 200;
        return sendJson(res, 200, completionBody(n, model, '', 'stop', promptTokens));
      default:
        status = 500;
        return sendJson(res, 500, errorBody(500, 'unhandled fault ' + fault, 'server_error'));
    }
  };
  if (delay > 0) setTimeout(reply, delay); else reply();
}

const server = http.createServer((req, res) => {
  stats.requests++;
  const arrival = Date.now();
  const path = req.url.split('?')[0];
  if (req.method === 'POST' && (path === '/v1/chat/completions' || path === '/chat/completions')) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => handleChat(req, res, Buffer.concat(chunks).toString('utf8'), arrival));
    return;
  }
  let outcome;
  if (req.method === 'GET' && path === '/health') {
    outcome = 'health';
    sendJson(res, 200, { status: 'ok' });
  } else if (req.method === 'GET' && (path === '/v1/models' || path === '/models')) {
    outcome = 'models';
    sendJson(res, 200, { object: 'list', data: [{ id: MODEL, object: 'model', created: 0, owned_by: 'mock', max_model_len: 32768 }] });
  } else if (req.method === 'GET' && path === '/stats') {
    outcome = 'stats';
    sendJson(res, 200, Object.assign({}, stats, { uptime_s: (Date.now() - startMs) / 1000 }));
  } else if (req.method === 'POST' && path === '/reset') {
    outcome = 'stats';
    resetStats();
    faultIndex = 0;
    latencyRng = mulberry32(SEED);
    faultRng = mulberry32(SEED ^ 0x9e3779b9);
    sendJson(res, 200, { status: 'reset' });
  } else {
    outcome = 'not-found';
    sendJson(res, 404, errorBody(404, 'no route ' + req.method + ' ' + path, 'invalid_request_error'));
  }
  req.resume();
  logLine({ n: 0, t: arrival, method: req.method, path: req.url, hash: null, outcome, status: res.statusCode, latency_ms: 0 });
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 121000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(PORT, HOST, () => {
  process.stdout.write('LISTENING ' + server.address().port + '\n');
});
function shutdown() {
  server.close();
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
  if (logStream) logStream.end(() => process.exit(0)); else process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
