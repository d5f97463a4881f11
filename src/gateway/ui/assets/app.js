// openclawd's monitoring page. Reads GET /events (Server-Sent Events) with fetch, so the
// gateway token travels in an Authorization header, never in a URL. No dependencies.
'use strict';

const TOKEN_KEY = 'openclawd.token';
const SVG_NS = 'http://www.w3.org/2000/svg'; // an XML namespace name, not a request
const HOUR_MIN = 60;
const SHOWN_REQUESTS = 200;

const view = {
  status: null,
  requests: [],
  series: {}, // model -> [{minute, requests, ttft_ms_sum, ttft_n, tps_sum, tps_n}]
  bench: null,
  timeline: [], // Ollama states seen while this page was open: {at, state, reason}
  fresh: 0, // requests that arrived since the last render (highlighted)
};
let conn = { state: 'connecting', since: null, controller: null, retry: 1000, everConnected: false };
const $ = (id) => document.getElementById(id);

// ---- DOM helpers: text only, never HTML from data ----
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}
function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}
function fill(id, ...kids) { $(id).replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined)); }
function badge(kind, text) { return h('span', { class: 'badge ' + kind }, text); }
function kv(pairs) {
  const dl = h('dl', { class: 'kv' });
  for (const [k, v] of pairs) if (v !== undefined) dl.append(h('dt', {}, k), h('dd', {}, v === null ? '—' : v));
  return dl;
}
function table(caption, heads, rows, numeric) {
  const num = new Set(numeric || []);
  return h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, heads.map((t, i) => h('th', { scope: 'col', class: num.has(i) ? 'num' : null }, t)))),
      h('tbody', {}, rows)));
}
function cells(values, numeric, cls) {
  const num = new Set(numeric || []);
  return h('tr', { class: cls || null }, values.map((v, i) => h('td', { class: num.has(i) ? 'num' : (i === 0 || i === 1 ? 'ref' : null) }, v === null || v === undefined ? '—' : v)));
}

// ---- formatting ----
const pad = (n) => String(n).padStart(2, '0');
function clock(ms) { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; }
function when(rfc) { if (!rfc) return null; const t = Date.parse(rfc); return isNaN(t) ? rfc : new Date(t).toLocaleString(); }
function duration(secs) {
  if (secs === null || secs === undefined || isNaN(secs)) return null;
  secs = Math.max(0, Math.round(secs));
  const d = Math.floor(secs / 86400), hh = Math.floor(secs / 3600) % 24, m = Math.floor(secs / 60) % 60, s = secs % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}
function bytes(n) {
  if (n === null || n === undefined) return null;
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}
function msText(v) { return v === null || v === undefined ? null : v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`; }
function num(v, digits) { return v === null || v === undefined ? null : Number(v).toFixed(digits); }
function yesNo(v) { return v === true ? 'yes' : v === false ? 'no' : '—'; }
function get(obj, ...keys) { for (const k of keys) if (obj && obj[k] !== undefined) return obj[k]; return undefined; }

// ---- panels ----
const OLLAMA_STATES = {
  running: ['ok', 'running'], starting: ['info', 'starting'], restarting: ['warn', 'restarting'],
  stopped: ['plain', 'stopped'], unreachable: ['bad', 'unreachable'], crash_loop: ['bad', 'crash loop'],
};

function renderSummary(st) {
  // The daemon's own verdict when it gives one; else the same rule, from the report's parts.
  let reasons = st.health && Array.isArray(st.health.problems) ? st.health.problems : null;
  if (!reasons) {
    reasons = [];
    const o = st.ollama || {};
    const primary = st.routing && st.routing.primary;
    const pm = (st.models || []).find((m) => m.ref === primary);
    if (st.config && st.config.error) reasons.push('the configuration has an error');
    if (!primary) reasons.push('no primary model is configured');
    else if (!pm) reasons.push(`the primary ${primary} is not in the catalogue`);
    else if (!pm.available) reasons.push(`the primary ${primary} is not routable now`);
    if (o.state && o.state !== 'running') reasons.push(`Ollama is ${(OLLAMA_STATES[o.state] || [0, o.state])[1]}`);
  }
  const words = reasons.map((r) => (typeof r === 'string' ? r : r.message));
  $('summary').replaceChildren(...(words.length
    ? [badge('warn', 'degraded'), ' ', words.join('; ')]
    : [badge('ok', 'healthy'), ' the primary model answers now']));
  // Each problem with what to do about it, above the panels.
  fill('problems', reasons.filter((r) => typeof r !== 'string').map((r) =>
    h('div', { class: 'alert' + (/warning|ignored/.test(r.kind || '') ? ' warn' : ''), role: 'alert' },
      h('strong', {}, r.message), r.fix ? h('div', {}, 'What to do: ', h('code', {}, r.fix)) : '')));
}

function nextRestart(at) {
  const left = (Date.parse(at) - Date.now()) / 1000;
  return left > 0 ? ` in ${left.toFixed(1)} s` : ' now';
}

function renderOllama(st) {
  const o = st.ollama || {};
  const [kind, word] = OLLAMA_STATES[o.state] || ['plain', o.state || 'unknown'];
  const attempt = o.restart_attempt;
  const stateCell = h('span', {}, badge(kind, word),
    o.next_restart_at ? h('span', { 'data-next': o.next_restart_at }, nextRestart(o.next_restart_at)) : '',
    attempt ? ` (attempt ${attempt})` : '');
  const mismatch = o.version_mismatch;
  const versions = h('span', {}, `server ${o.server_version || '—'}, binary ${o.binary_version || '—'}`,
    o.server_version && o.binary_version && o.server_version !== o.binary_version && !mismatch ? h('span', { class: 'error' }, ' (differ)') : '');
  // The report's start time when it has one; else a (re)start this page saw happen.
  let since = get(o, 'running_since', 'healthy_since', 'started_at');
  const tl = view.timeline;
  if (!since && o.state === 'running' && tl.length > 1 && tl[tl.length - 1].state === 'running') since = new Date(tl[tl.length - 1].at).toISOString();
  const pairs = [
    ['State', stateCell],
    ['Management', o.management || 'none known'],
    ['Version', versions],
    ['PID', o.pid ?? null],
    ['Uptime', since ? h('span', { 'data-since': since }, duration((Date.now() - Date.parse(since)) / 1000)) : null],
    ['Address', o.base_url || null],
    ['Restarts', `${o.restarts ?? 0}${o.last_restart_reason ? ' — last: ' + o.last_restart_reason : ''}${o.last_restart_at ? ' at ' + when(o.last_restart_at) : ''}`],
  ];
  const out = [kv(pairs)];
  if (mismatch) out.push(h('div', { class: 'alert', role: 'alert' }, h('strong', {}, 'Version mismatch: '), h('code', {}, mismatch)));
  const loaded = get(o, 'loaded', 'loaded_models') ?? get(st, 'loaded_models');
  if (Array.isArray(loaded)) {
    out.push(h('h3', {}, 'Loaded models'));
    out.push(loaded.length
      ? table('Loaded in memory (ollama ps)', ['Model', 'Size', 'In VRAM', 'Unloads'],
        loaded.map((m) => cells([m.name || m.model, bytes(m.size), bytes(m.size_vram), when(m.expires_at || m.until)], [1, 2])), [1, 2])
      : h('p', { class: 'muted' }, 'No model is loaded.'));
  }
  const history = get(o, 'restart_history', 'history');
  out.push(h('h3', {}, 'Restarts over time', Array.isArray(history) ? '' : h('span', { class: 'muted' }, ' (state changes seen by this page)')));
  const items = Array.isArray(history)
    ? history.map((e) => ({ at: Date.parse(e.at || e.time), state: e.state || 'restart', reason: e.reason }))
    : view.timeline;
  out.push(items.length
    ? h('ol', { class: 'timeline', 'aria-label': 'State changes' }, items.slice().reverse().map((e) =>
      h('li', {}, h('span', { class: 'mono' }, isNaN(e.at) ? '' : clock(e.at)), ' ',
        badge((OLLAMA_STATES[e.state] || ['plain'])[0], (OLLAMA_STATES[e.state] || [0, e.state])[1]),
        e.reason ? ` ${e.reason}` : '')))
    : h('p', { class: 'muted' }, 'No state change since this page opened.'));
  fill('ollama-body', out);
}

function modelAvailability(st, ref) {
  const m = (st.models || []).find((x) => x.ref === ref);
  if (!m) {
    const sk = (st.skipped_models || []).find((x) => x.ref === ref);
    if (sk) return [badge('bad', 'skipped'), ` ${sk.reason}`];
    return [badge('bad', 'not in the catalogue'), ' not configured or not discovered'];
  }
  if (m.cooldown_until) {
    const left = (Date.parse(m.cooldown_until) - Date.now()) / 1000;
    return [badge('warn', 'cooling down'), h('span', { 'data-until': m.cooldown_until }, left > 0 ? ` ${duration(left)} left` : ' ending')];
  }
  if (m.unroutable) return [badge('bad', 'not routable'), ` ${m.unroutable}`];
  return m.available ? [badge('ok', 'available')] : [badge('bad', 'unavailable'), ' its Ollama is not running'];
}

function renderRouting(st) {
  const r = st.routing || {};
  const chain = [];
  if (r.primary) chain.push([r.primary, 'primary']);
  for (const f of r.fallbacks || []) chain.push([f, 'fallback']);
  const out = [];
  if (!chain.length) out.push(h('p', { class: 'alert warn' }, 'No primary model is configured: set agents.defaults.model.primary in openclaw.json.'));
  else out.push(h('ol', { class: 'chain', 'aria-label': 'Fallback chain' }, chain.map(([ref, role]) =>
    h('li', {}, h('span', { class: 'mono' }, ref), ' ', h('span', { class: 'muted' }, `(${role})`), ' ', modelAvailability(st, ref)))));
  const aliases = Object.entries(r.aliases || {});
  if (aliases.length) out.push(h('h3', {}, 'Aliases'), kv(aliases.map(([a, t]) => [a, t])));
  const g = st.gateway || {};
  out.push(h('h3', {}, 'Gateway'), kv([['Listening on', g.listen || null], ['Requests', g.requests_total ?? null], ['Answered by a fallback', g.fallbacks_total ?? null]]));
  fill('routing-body', out);
}

function renderModels(st) {
  const models = st.models || [];
  const out = [table(`Catalogue: ${models.length} model${models.length === 1 ? '' : 's'}`,
    ['Model', 'Source', 'Tools', 'Reasoning', 'Context', 'Max tokens', 'Now'],
    models.map((m) => cells([m.ref, m.source, yesNo(m.tools), yesNo(m.reasoning), m.context_window ?? null, m.max_tokens ?? null,
      h('span', {}, modelAvailability(st, m.ref))], [4, 5])), [4, 5])];
  const d = st.discovery || {};
  if (d.error) out.push(h('div', { class: 'alert', role: 'alert' }, h('strong', {}, 'Discovery failed: '), d.error));
  if (d.enabled === false) out.push(h('p', { class: 'muted' }, 'Ollama discovery is off (no OLLAMA_API_KEY / ollama auth profile, or models listed explicitly).'));
  const ignored = d.ignored_installed;
  if (Array.isArray(ignored) && ignored.length) out.push(h('div', { class: 'alert warn' }, `${ignored.length} installed model${ignored.length === 1 ? '' : 's'} ignored (${ignored.join(', ')}): set OLLAMA_API_KEY (any value) to discover them.`));
  const skipped = st.skipped_models || [];
  out.push(h('h3', {}, `Skipped: ${skipped.length}`));
  if (skipped.length) out.push(table('Installed but not routable', ['Model', 'Why', 'What to do'],
    skipped.map((s) => cells([s.ref, s.reason, s.fix || null]))));
  fill('models-body', out);
}

function renderRequests() {
  const rows = view.requests.slice(-SHOWN_REQUESTS).reverse();
  const fresh = view.fresh; view.fresh = 0;
  const out = [];
  out.push(rows.length
    ? table(`Last ${rows.length} request${rows.length === 1 ? '' : 's'} (newest first)`,
      ['Time', 'Asked', 'Answered by', 'Attempts', 'Fallback', 'Status', 'TTFT', 'Tokens/s', 'Duration'],
      rows.map((r, i) => cells([
        clock(r.at_ms), r.asked ?? null, r.answered ?? h('span', { class: 'error' }, 'none'), r.attempts,
        r.fallback ? badge('warn', 'fallback') : 'no',
        h('span', {}, badge(r.status < 400 && !r.outcome ? 'ok' : r.status < 400 ? 'warn' : 'bad', String(r.status)), r.outcome ? ` ${r.outcome}` : ''),
        msText(r.ttft_ms), num(r.tokens_per_second, 1), msText(r.duration_ms)], [3, 6, 7, 8], i < fresh ? 'fresh' : null)),
      [3, 6, 7, 8])
    : h('p', { class: 'muted' }, 'No chat request since openclawd started.'));
  fill('requests-body', out);
}

function bucketAverage(b, which) {
  return which === 'ttft' ? (b.ttft_n ? b.ttft_ms_sum / b.ttft_n : null) : (b.tps_n ? b.tps_sum / b.tps_n : null);
}

function sparkline(buckets, which, nowMin) {
  const W = 240; const H = 40;
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
  box.append(svg('line', { class: 'axis', x1: 0, y1: H - 1, x2: W, y2: H - 1 }));
  const pts = buckets.map((b) => [b.minute, bucketAverage(b, which)]).filter(([, v]) => v !== null);
  if (!pts.length) return [box, null, null];
  const max = Math.max(...pts.map(([, v]) => v)) || 1;
  const x = (m) => (((m - (nowMin - HOUR_MIN + 1)) / (HOUR_MIN - 1)) * (W - 6) + 3).toFixed(1);
  const y = (v) => (H - 3 - (v / max) * (H - 8)).toFixed(1);
  if (pts.length > 1) box.append(svg('polyline', { class: which, points: pts.map(([m, v]) => `${x(m)},${y(v)}`).join(' ') }));
  // Zero-length round-capped strokes stay round dots however the chart is stretched.
  box.append(svg('path', { class: 'dot ' + which, d: pts.map(([m, v]) => `M${x(m)} ${y(v)}h0`).join('') }));
  return [box, pts[pts.length - 1][1], max];
}

function renderCharts() {
  const nowMin = Math.floor(Date.now() / 60000);
  const models = Object.keys(view.series).filter((m) => view.series[m].some((b) => b.minute > nowMin - HOUR_MIN));
  if (!models.length) { fill('charts'); return; }
  const charts = models.map((model) => {
    const buckets = view.series[model].filter((b) => b.minute > nowMin - HOUR_MIN);
    const total = buckets.reduce((a, b) => a + b.requests, 0);
    const [ttftBox, lastT, maxT] = sparkline(buckets, 'ttft', nowMin);
    const [tpsBox, lastS, maxS] = sparkline(buckets, 'tps', nowMin);
    const line = (cls, name, chart, last, max, fmt) => h('div', { class: 'spark' },
      h('span', { class: 'k-' + cls }, name), chart,
      h('span', { class: 'num' }, last === null ? '—' : fmt(last), h('br'), h('span', { class: 'muted' }, max === null ? '' : `max ${fmt(max)}`)));
    return h('figure', { class: 'chart', 'aria-label': `${model}: ${total} requests in the last hour; latest minute: time to first token ${lastT === null ? 'not measured' : msText(lastT)}, ${lastS === null ? 'no decode speed' : num(lastS, 1) + ' tokens per second'}` },
      h('h3', {}, model),
      line('ttft', 'TTFT', ttftBox, lastT, maxT, msText),
      line('tps', 'tokens/s', tpsBox, lastS, maxS, (v) => num(v, 1)),
      h('figcaption', { class: 'legend' }, `${total} request${total === 1 ? '' : 's'} in the last hour, averaged per minute`));
  });
  fill('charts', h('div', { class: 'charts' }, charts));
}

function renderHousekeeping(st) {
  const hk = st.housekeeping || {};
  const out = [kv([
    ['Last action', hk.last_action || 'none yet'],
    ['Sessions cleared', hk.sessions_cleared_total ?? 0],
    ['Port reclaims', hk.port_reclaims_total ?? 0],
  ])];
  const stores = hk.stores || [];
  if (stores.length) {
    out.push(table('Sessions stores', ['Agent', 'File', 'Size', 'Entries', 'Last round'],
      stores.map((s) => {
        const limit = get(s, 'max_bytes', 'limit_bytes');
        const size = !s.exists ? 'no file yet' : limit
          ? h('span', {}, h('meter', { min: 0, max: limit, value: s.size_bytes, high: limit * 0.8, optimum: 0, 'aria-label': 'size against limit' }), ` ${bytes(s.size_bytes)} of ${bytes(limit)}`)
          : bytes(s.size_bytes);
        const action = s.error ? h('span', { class: 'error' }, s.error)
          : s.action ? (s.action.kind || '').replace(/_/g, ' ') + (s.action.removed ? ` (${s.action.removed})` : '')
            : s.overflowing && s.overflowing.length ? `${s.overflowing.length} overflowing` : 'ok';
        return cells([s.agent_id, h('span', { class: 'mono' }, s.path), size, s.entries, action], [3]);
      }), [3]));
  }
  fill('housekeeping-body', out);
}

function renderConfig(st) {
  const c = st.config || {};
  const out = [kv([
    ['File', c.path ? h('span', { class: 'mono' }, c.path) : null],
    ['Generation', c.generation ?? null],
    ['Loaded at', when(c.loaded_at)],
    ['State', c.error ? badge('bad', 'error') : (c.warnings || []).length ? badge('warn', 'warnings') : badge('ok', 'valid')],
  ])];
  if (c.error) out.push(h('div', { class: 'alert', role: 'alert' }, h('strong', {}, 'Error: '), h('span', { class: 'mono' }, c.error)));
  for (const w of c.warnings || []) out.push(h('div', { class: 'alert warn' }, h('span', { class: 'mono' }, typeof w === 'string' ? w : w.message || JSON.stringify(w))));
  const logs = st.logs;
  if (logs && logs.openclawd) {
    out.push(h('h3', {}, 'Logs'), kv([
      ['openclawd', h('span', { class: 'mono' }, logs.openclawd)],
      ['Ollama', logs.ollama ? h('span', { class: 'mono' }, logs.ollama) : null],
      ['Journal', logs.journal ? h('code', {}, logs.journal) : undefined],
    ]));
  }
  fill('config-body', out);
}

function renderBench() {
  const b = view.bench;
  if (!b) return;
  const models = b.models || [];
  const at = get(b, 'finished_at', 'saved_at');
  fill('bench-body',
    h('p', {}, at ? `Ran ${when(at)}. ` : '', b.conclusion || ''),
    table(`${models.length} model${models.length === 1 ? '' : 's'}, ${b.runs ?? '?'} runs each`,
      ['Model', 'Result', 'TTFT (median)', 'Tokens/s (median)', 'Total (median)', 'Load'],
      models.map((m) => cells([m.model,
        m.skipped ? h('span', {}, badge('plain', 'skipped'), ` ${m.skipped}`)
          : m.ok ? badge('ok', 'ok') : h('span', {}, badge('bad', 'failed'), m.error ? ` ${m.error}` : ''),
        msText(m.ttft_ms && m.ttft_ms.median), num(m.tokens_per_second && m.tokens_per_second.median, 1),
        msText(m.total_ms && m.total_ms.median), msText(m.load_ms)], [2, 3, 4, 5])), [2, 3, 4, 5]));
}

function renderDaemon(st) {
  const d = st.daemon || {};
  fill('daemon', `openclawd ${d.version || ''} · pid `, h('span', { id: 'footer-pid' }, d.pid ?? '—'), ' · up ',
    h('span', { 'data-since': d.started_at || '' }, duration((Date.now() - Date.parse(d.started_at)) / 1000)),
    ` · started ${when(d.started_at) || '—'}`);
}

// ---- scheduling: the first data at once, then at most every 200 ms, whatever the event rate ----
let dirty = { status: false, requests: false, bench: false };
let renderTimer = null;
function schedule(what) {
  dirty[what] = true;
  if (renderTimer === null) renderTimer = setTimeout(render, view.rendered ? 200 : 0);
}
function render() {
  renderTimer = null;
  const st = view.status;
  if (dirty.status && st) {
    if (!view.rendered) { view.rendered = true; performance.mark('openclawd-first-render'); }
    renderSummary(st); renderOllama(st); renderRouting(st); renderModels(st);
    renderHousekeeping(st); renderConfig(st); renderDaemon(st);
  }
  if (dirty.requests) { renderRequests(); renderCharts(); }
  if (dirty.bench) renderBench();
  dirty = { status: false, requests: false, bench: false };
}

// Clocks that move without the daemon: uptimes and cooldowns left.
setInterval(() => {
  for (const el of document.querySelectorAll('[data-since]')) {
    const t = Date.parse(el.dataset.since);
    if (!isNaN(t)) el.textContent = duration((Date.now() - t) / 1000);
  }
  for (const el of document.querySelectorAll('[data-next]')) el.textContent = nextRestart(el.dataset.next);
  for (const el of document.querySelectorAll('[data-until]')) {
    const left = (Date.parse(el.dataset.until) - Date.now()) / 1000;
    el.textContent = left > 0 ? ` ${duration(left)} left` : ' ending';
  }
  if (conn.state === 'down') showConnection();
}, 1000);

// ---- events ----
function onStatus(st) {
  const prev = view.status && view.status.ollama && view.status.ollama.state;
  const now = st.ollama && st.ollama.state;
  if (now && now !== prev) {
    view.timeline.push({ at: Date.now(), state: now, reason: now === 'running' ? null : st.ollama.last_restart_reason });
    if (view.timeline.length > 50) view.timeline.shift();
  }
  view.status = st;
  schedule('status');
}
function addToSeries(r) {
  if (!r.answered) return;
  const minute = Math.floor(r.at_ms / 60000);
  const list = view.series[r.answered] || (view.series[r.answered] = []);
  let last = list[list.length - 1];
  if (!last || last.minute < minute) { last = { minute, requests: 0, ttft_ms_sum: 0, ttft_n: 0, tps_sum: 0, tps_n: 0 }; list.push(last); }
  while (list.length && list[0].minute + HOUR_MIN <= minute) list.shift();
  last.requests++;
  if (r.ttft_ms !== null && r.ttft_ms !== undefined) { last.ttft_ms_sum += r.ttft_ms; last.ttft_n++; }
  if (r.tokens_per_second !== null && r.tokens_per_second !== undefined) { last.tps_sum += r.tokens_per_second; last.tps_n++; }
}
function onEvent(name, data) {
  let v;
  try { v = JSON.parse(data); } catch (e) { return; }
  if (name === 'status') onStatus(v);
  else if (name === 'requests') { view.requests = v.requests || []; view.series = v.series || {}; view.fresh = 0; schedule('requests'); }
  else if (name === 'request') {
    view.requests.push(v);
    if (view.requests.length > SHOWN_REQUESTS) view.requests.splice(0, view.requests.length - SHOWN_REQUESTS);
    addToSeries(v); view.fresh++; schedule('requests');
  } else if (name === 'bench') { view.bench = v; schedule('bench'); }
}

function showConnection() {
  const el = $('conn');
  el.className = 'conn' + (conn.state === 'down' ? ' down' : '');
  $('main').classList.toggle('stale', conn.state === 'down');
  if (conn.state === 'live') el.replaceChildren(badge('ok', 'live'));
  else if (conn.state === 'down') {
    el.replaceChildren(badge('bad', 'disconnected'), ` since ${clock(conn.since)} (${duration((Date.now() - conn.since) / 1000)}): reconnecting…`);
  } else el.replaceChildren(badge('info', 'connecting'));
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }
function needsToken() { return document.documentElement.dataset.auth === 'token'; }

function showGate(message) {
  if (conn.controller) conn.controller.abort();
  conn.state = 'gate';
  $('main').hidden = true;
  $('gate').hidden = false;
  $('forget').hidden = true;
  $('summary').textContent = 'Locked: this gateway needs its token.';
  $('conn').replaceChildren();
  $('daemon').replaceChildren();
  $('gate-error').textContent = message || '';
  // What an earlier token let this tab see goes too.
  for (const id of ['problems', 'ollama-body', 'routing-body', 'models-body', 'charts', 'requests-body', 'housekeeping-body', 'config-body']) fill(id);
  Object.assign(view, { status: null, requests: [], series: {}, timeline: [], fresh: 0 });
  $('token').focus();
}

function down() {
  if (conn.state !== 'down') { conn.state = 'down'; conn.since = Date.now(); }
  showConnection();
  setTimeout(connect, conn.retry);
  conn.retry = Math.min(conn.retry * 2, 5000);
}

async function connect() {
  if (conn.state === 'gate') return;
  const headers = { Accept: 'text/event-stream' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  const controller = new AbortController();
  conn.controller = controller;
  // A connection that says nothing for longer than the daemon's keepalive is dead.
  let watchdog = setTimeout(() => controller.abort(), 40000);
  const alive = () => { clearTimeout(watchdog); watchdog = setTimeout(() => controller.abort(), 40000); };
  let resp;
  try {
    resp = await fetch('/events', { headers, cache: 'no-store', signal: controller.signal });
  } catch (e) {
    clearTimeout(watchdog);
    if (conn.state !== 'gate') down();
    return;
  }
  if (resp.status === 401) {
    clearTimeout(watchdog);
    sessionStorage.removeItem(TOKEN_KEY);
    showGate(t ? 'That token was not accepted (401). Check gateway.auth.token in openclaw.json or OPENCLAW_GATEWAY_TOKEN.' : '');
    return;
  }
  if (!resp.ok || !resp.body) { clearTimeout(watchdog); down(); return; }
  conn.state = 'live'; conn.retry = 1000; conn.everConnected = true;
  $('gate').hidden = true; $('main').hidden = false; $('forget').hidden = !t;
  showConnection();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      alive();
      buf += value;
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
        let name = 'message'; const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) onEvent(name, data.join('\n'));
      }
    }
  } catch (e) { /* the daemon went away: reconnect below */ }
  clearTimeout(watchdog);
  if (conn.state !== 'gate') down();
}

function start() {
  $('gate').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('token').value.trim();
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    $('token').value = '';
    $('gate').hidden = true;
    $('gate-error').textContent = '';
    conn.state = 'connecting';
    $('summary').textContent = 'Connecting…';
    connect();
  });
  $('forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showGate('Token forgotten.'); });
  if (needsToken() && !token()) { showGate(''); return; }
  showConnection();
  connect();
}
document.addEventListener('DOMContentLoaded', start);
