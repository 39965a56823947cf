// taskq dashboard: a single-page app over taskq serve's JSON API, no
// dependencies.  The API token is kept in sessionStorage (this tab only);
// every call sends it as a bearer token, and the live event stream
// (GET /api/v1/events, SSE) takes it as ?access_token=.  Actions are shown
// only where GET /api/v1/whoami says the role may do them; the server
// checks every one anyway.
'use strict';

const TOKEN_KEY = 'taskq_token';
const STATES = ['waiting', 'active', 'delayed', 'blocked', 'completed', 'cancelled', 'dlq'];
const STATE_COLORS = {
  waiting: '#2456c7', active: '#7a3fc0', delayed: '#8a6a00', blocked: '#5b6675',
  completed: '#1d7a3a', cancelled: '#6b6b6b', dlq: '#b3261e'
};

let me = null;            // GET /api/v1/whoami
let events = null;        // the EventSource
let pollTimer = null;     // polling when the stream is not available
let refreshTimer = null;  // a coalesced refresh after events
let current = null;       // { view, args, refresh() }
let renderSeq = 0;        // a newer render makes an older one's results moot

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const $ = (sel, root = document) => root.querySelector(sel);

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'
  }[c]));
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.hint = body && body.error && body.error.hint;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!res.ok) {
    if (res.status === 401 && method === 'GET' && path === '/api/v1/whoami') throw new ApiError(401, data);
    if (res.status === 401) { signOut('Your token was refused: sign in again.'); }
    throw new ApiError(res.status, data);
  }
  return data;
}

const enc = encodeURIComponent;

function ago(ts) {
  if (!ts) return '';
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  const a = Math.abs(s);
  const txt = a < 60 ? `${a}s` : a < 3600 ? `${Math.round(a / 60)}m` : a < 86400 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  return s >= 0 ? `${txt} ago` : `in ${txt}`;
}

function ageMs(ms) {
  if (ms == null) return '—';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.round(s / 60)}m` : `${(s / 3600).toFixed(1)}h`;
}

function time(ts) {
  return ts ? `<time datetime="${esc(ts)}" title="${esc(ts)}">${esc(ago(ts))}</time>` : '<span class="muted">—</span>';
}

function badge(state) {
  return `<span class="badge ${esc(state)}">${esc(state)}</span>`;
}

function json(v) {
  return v == null ? '<p class="muted">none</p>' : `<pre class="json">${esc(JSON.stringify(v, null, 2))}</pre>`;
}

function progress(p) {
  return `<span class="progress" role="progressbar" aria-valuenow="${p | 0}" aria-valuemin="0" aria-valuemax="100" aria-label="progress"><span style="width:${Math.max(0, Math.min(100, p | 0))}%"></span></span> ${p | 0}%`;
}

function short(id) { return String(id).slice(-12); }

function toast(msg, bad) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = 'toast' + (bad ? ' bad' : '');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

function may(queue, priv) {
  if (!me) return false;
  if (me.admin) return true;
  const p = me.queues[queue] || [];
  return p.includes(priv) || p.includes('admin');
}

function spark(values, color, label) {
  const w = 90, h = 22;
  if (!values || !values.length) return '';
  const max = Math.max(1, ...values);
  const step = w / Math.max(1, values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`).join(' ');
  const total = values.reduce((a, b) => a + b, 0);
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(label)}: ${total} in ${values.length} min"><polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"/></svg>`;
}

function errorBox(e) {
  return `<div class="error-box" role="alert"><strong>${esc(e.message)}</strong>${e.code ? ` <span class="muted mono">${esc(e.code)}</span>` : ''}${e.hint ? `<br>${esc(e.hint)}` : ''}</div>`;
}

// run an action: confirm, call, toast, refresh
async function act(label, fn, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  try {
    await fn();
    toast(label);
    refresh();
  } catch (e) {
    toast(`${e.message}${e.code ? ` (${e.code})` : ''}`, true);
  }
}

// ---------------------------------------------------------------------------
// sign-in, the live stream
// ---------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  stopLive();
  location.hash = '#/login';
  if (message) setTimeout(() => toast(message, true), 0);
}

function renderLogin() {
  $('#top').hidden = true;
  $('#main').innerHTML = `
    <section class="login panel">
      <h1>taskq</h1>
      <form id="login-form">
        <label>API token
          <input id="token" name="token" type="password" autocomplete="off" required
                 placeholder="tq_…" aria-describedby="token-help">
        </label>
        <p id="token-help" class="muted">A token made by <code>taskq.create_api_token(role)</code>.
        It is kept in this browser tab only.</p>
        <div id="login-error" role="alert"></div>
        <button type="submit">Sign in</button>
      </form>
    </section>`;
  $('#token').focus();
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
    try {
      me = await api('GET', '/api/v1/whoami');
      location.hash = '#/';
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      $('#login-error').innerHTML = errorBox(e.status === 401 ? new Error('That token was not accepted.') : e);
    }
  });
}

function setLive(state) {
  const el = $('#live');
  el.className = 'live' + (state === 'live' ? ' on' : state === 'polling' ? ' poll' : '');
  el.textContent = state;
  el.title = state === 'live' ? 'Following the event stream' : 'The event stream is not available: refreshing every 5 s';
}

function startLive() {
  if (events || !token()) return;
  events = new EventSource(`/api/v1/events?access_token=${enc(token())}`);
  let failures = 0;
  events.onopen = () => { failures = 0; setLive('live'); stopPolling(); };
  const onEvent = (ev) => {
    let data = null;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (current && current.onEvent) current.onEvent(data);
    scheduleRefresh();
  };
  ['job.pushed', 'job.completed', 'job.failed', 'job.dlq', 'job.cancelled',
   'job.progress', 'job.redriven', 'job.promoted', 'events.lost'].forEach((t) => events.addEventListener(t, onEvent));
  events.addEventListener('close', () => { stopLive(); startPolling(); });
  events.onerror = () => {
    failures++;
    if (failures >= 3 || events.readyState === EventSource.CLOSED) {
      stopLive();
      startPolling();
    } else {
      setLive('reconnecting');
    }
  };
}

function stopLive() {
  if (events) { events.close(); events = null; }
}

function startPolling() {
  setLive('polling');
  if (!pollTimer) pollTimer = setInterval(() => refresh(true), 5000);
}

function stopPolling() {
  if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(true); }, 400);
}

// ---------------------------------------------------------------------------
// views
// ---------------------------------------------------------------------------

async function viewOverview(el, quiet) {
  const q = (sel) => el.querySelector(sel);
  const [queues, tp] = await Promise.all([
    api('GET', '/api/v1/queues'),
    api('GET', '/api/v1/throughput?minutes=30').catch(() => null)
  ]);
  // the age of the oldest waiting job: from stats, for queues with waiting jobs
  await Promise.all(queues.filter((q) => q.waiting > 0).map(async (q) => {
    const st = await api('GET', `/api/v1/queues/${enc(q.name)}/stats`).catch(() => null);
    if (st) q.oldest_waiting_age_ms = st.oldest_waiting_age_ms;
  }));
  const score = (q) => (q.dlq > 0 ? 4 : 0) + (q.paused ? 2 : 0) + ((q.oldest_waiting_age_ms || 0) > 60000 ? 2 : 0) + (q.throttled > 0 ? 1 : 0);
  queues.sort((a, b) => score(b) - score(a) || a.name.localeCompare(b.name));
  const rows = queues.map((q) => {
    const t = tp && tp.queues && tp.queues[q.name];
    const flags = [q.paused ? '<span class="badge paused">paused</span>' : '',
                   q.throttled > 0 ? `<span class="badge warn" title="jobs held back by limits">${q.throttled} throttled</span>` : ''].join(' ');
    return `<tr class="${score(q) >= 4 ? 'unhealthy' : ''}">
      <td><a href="#/queue/${enc(q.name)}">${esc(q.name)}</a> ${flags}</td>
      <td class="num">${q.waiting}</td><td class="num">${q.active}</td>
      <td class="num hide-sm">${q.delayed}</td><td class="num hide-sm">${q.blocked}</td>
      <td class="num">${q.dlq > 0 ? `<a href="#/queue/${enc(q.name)}/dlq" class="badge dlq">${q.dlq}</a>` : 0}</td>
      <td class="num hide-sm">${q.completed}</td>
      <td class="num">${ageMs(q.oldest_waiting_age_ms)}</td>
      <td class="hide-sm">${t ? spark(t.completed, STATE_COLORS.completed, 'completed per minute') + ' ' + spark(t.dlq, STATE_COLORS.dlq, 'dead per minute') : ''}</td>
      <td class="hide-sm muted">${esc(q.limits || '')}</td>
    </tr>`;
  }).join('');
  el.innerHTML = `
    <h1>Queues <span class="muted" style="font-size:14px">${queues.length}</span></h1>
    ${queues.length === 0 ? '<div class="panel empty">No queue you may see yet. Push a job, or create a queue with <code>taskq.create_queue</code>.</div>' : `
    <div class="table-wrap"><table aria-label="Queues">
      <thead><tr><th>Queue</th><th class="num">Waiting</th><th class="num">Active</th>
      <th class="num hide-sm">Delayed</th><th class="num hide-sm">Blocked</th><th class="num">Dead</th>
      <th class="num hide-sm">Completed</th><th class="num">Oldest waiting</th>
      <th class="hide-sm">Last 30 min (done / dead)</th><th class="hide-sm">Limits</th></tr></thead>
      <tbody>${rows}</tbody></table></div>`}`;
}

function jobRows(jobs, opts = {}) {
  return jobs.map((j) => `<tr>
    ${opts.select ? `<td><input type="checkbox" class="pick" value="${esc(j.id)}" aria-label="select job ${esc(short(j.id))}"></td>` : ''}
    <td><a class="mono" href="#/job/${enc(j.id)}" title="${esc(j.id)}">${esc(short(j.id))}</a></td>
    ${opts.queue ? `<td><a href="#/queue/${enc(opts.queue)}">${esc(opts.queue)}</a></td>` : ''}
    <td>${esc(j.name)}</td><td>${badge(j.state)}</td>
    <td class="num">${j.priority ?? ''}</td><td class="num">${j.attempts}/${j.max_attempts}</td>
    <td class="hide-sm">${esc(j.group || '')}</td>
    <td class="hide-sm">${j.flow_id ? `<a href="#/flow/${enc(j.flow_id)}">${esc(j.flow_id)}</a>` : ''}</td>
    <td>${j.state === 'active' ? progress(j.progress) : ''}</td>
    <td>${time(j.finished_at || (j.state === 'active' ? j.lease_expires_at : j.state === 'delayed' ? j.run_at : j.created_at))}</td>
    <td class="wrap">${esc(j.error || '')}</td>
  </tr>`).join('');
}

const JOB_HEAD = (opts = {}) => `<thead><tr>${opts.select ? '<th><span class="skip">select</span></th>' : ''}<th>Job</th>${opts.queue ? '<th>Queue</th>' : ''}<th>Name</th><th>State</th><th class="num">Priority</th><th class="num">Attempts</th><th class="hide-sm">Group</th><th class="hide-sm">Flow</th><th>Progress</th><th>When</th><th>Error</th></tr></thead>`;

async function viewQueue(el, quiet, name, state = 'waiting') {
  const q = (sel) => el.querySelector(sel);
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const [stats, page] = await Promise.all([
    api('GET', `/api/v1/queues/${enc(name)}/stats`),
    api('GET', `/api/v1/queues/${enc(name)}/list?state=${enc(state)}&count=50${['name', 'group', 'flow_id', 'search', 'since', 'until'].map((k) => params.get(k) ? `&${k}=${enc(k === 'since' || k === 'until' ? new Date(params.get(k)).toISOString() : params.get(k))}` : '').join('')}`)
  ]);
  const counts = stats.counts || {};
  const admin = may(name, 'admin');
  const tabs = STATES.map((s) => `<a href="#/queue/${enc(name)}/${s}" aria-current="${s === state}">${s}<span class="count">${counts[s] ?? 0}</span></a>`).join('');
  const f = (k, label, type = 'text') => `<label>${label}<input name="${k}" type="${type}" value="${esc(params.get(k) || '')}"></label>`;
  el.innerHTML = `
    <div class="crumbs"><a href="#/">Queues</a> /</div>
    <h1>${esc(name)} ${stats.paused ? '<span class="badge paused">paused</span>' : ''}
      ${stats.limits ? `<span class="muted" style="font-size:13px">${esc(JSON.stringify(stats.limits))}</span>` : ''}</h1>
    ${admin ? `<div class="actions" aria-label="Queue actions">
      ${stats.paused ? '<button type="button" id="resume">Resume</button>' : '<button type="button" class="secondary" id="pause">Pause</button>'}
      <button type="button" class="secondary" id="redrive-all" ${counts.dlq ? '' : 'disabled'}>Redrive all dead (${counts.dlq || 0})</button>
      <button type="button" class="danger" id="purge">Purge waiting</button>
      <button type="button" class="secondary" id="settings">Settings</button>
    </div>
    <div id="settings-panel" class="panel" hidden>
      <label>Options to change (JSON, as <code>alter_queue</code> takes them)
        <textarea id="settings-json" spellcheck="false">{}</textarea></label>
      <div class="actions" style="margin-top:8px"><button type="button" id="settings-save">Save</button></div>
    </div>` : ''}
    <nav class="tabs" aria-label="States">${tabs}</nav>
    <form class="filters" id="filters" role="search">
      ${f('name', 'Name')}${f('group', 'Group')}${f('flow_id', 'Flow')}${f('search', 'Text in data or metadata', 'search')}
      ${f('since', 'Created from', 'datetime-local')}${f('until', 'Created before', 'datetime-local')}
      <div class="actions" style="margin:0"><button type="submit">Filter</button><button type="button" class="secondary" id="clear">Clear</button></div>
    </form>
    <div class="table-wrap"><table aria-label="Jobs">${JOB_HEAD()}<tbody id="jobs">${jobRows(page.jobs)}</tbody></table>
    ${page.jobs.length === 0 ? `<div class="empty">No ${esc(state)} jobs${params.toString() ? ' matching these filters' : ''}.</div>` : ''}</div>
    <div class="actions" style="margin-top:10px"><button type="button" class="secondary" id="more" ${page.next ? '' : 'hidden'}>Load more</button></div>`;
  let next = page.next;
  q('#more').addEventListener('click', async () => {
    const more = await api('GET', `/api/v1/queues/${enc(name)}/list?state=${enc(state)}&count=50&after=${enc(next)}${['name', 'group', 'flow_id', 'search'].map((k) => params.get(k) ? `&${k}=${enc(params.get(k))}` : '').join('')}`);
    q('#jobs').insertAdjacentHTML('beforeend', jobRows(more.jobs));
    next = more.next;
    q('#more').hidden = !next;
    current.paged = true;
  });
  q('#filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const sp = new URLSearchParams();
    new FormData(ev.target).forEach((v, k) => { if (v) sp.set(k, v); });
    location.hash = `#/queue/${enc(name)}/${state}${sp.toString() ? '?' + sp : ''}`;
  });
  q('#clear').addEventListener('click', () => { location.hash = `#/queue/${enc(name)}/${state}`; });
  if (admin) {
    const qn = enc(name);
    q('#pause')?.addEventListener('click', () => act('Paused', () => api('POST', `/api/v1/queues/${qn}/pause`)));
    q('#resume')?.addEventListener('click', () => act('Resumed', () => api('POST', `/api/v1/queues/${qn}/resume`)));
    q('#redrive-all').addEventListener('click', () => act('Dead jobs redriven', () => api('POST', `/api/v1/queues/${qn}/redrive`), `Put every dead job of ${name} back to waiting?`));
    q('#purge').addEventListener('click', () => act('Purged', () => api('POST', `/api/v1/queues/${qn}/purge`), `Delete every waiting and delayed job of ${name}?`));
    q('#settings').addEventListener('click', () => { const p = q('#settings-panel'); p.hidden = !p.hidden; if (!p.hidden) q('#settings-json').focus(); });
    q('#settings-save').addEventListener('click', () => {
      let body;
      try { body = JSON.parse(q('#settings-json').value); } catch (e) { toast('The settings are not valid JSON', true); return; }
      act('Settings saved', () => api('PATCH', `/api/v1/queues/${qn}`, body));
    });
  }
}

async function viewJob(el, quiet, id) {
  const q = (sel) => el.querySelector(sel);
  let job;
  try {
    job = await api('GET', `/api/v1/jobs/${enc(id)}`);
  } catch (e) {
    if (e.status === 404) { el.innerHTML = `<div class="crumbs"><a href="#/">Queues</a> /</div><div class="panel empty">No job ${esc(id)} that you may see.</div>`; return; }
    throw e;
  }
  const attempts = await api('GET', `/api/v1/jobs/${enc(id)}/errors`).catch(() => []);
  let children = [];
  if (job.flow_id) {
    const flow = await api('GET', `/api/v1/flows/${enc(job.flow_id)}`).catch(() => null);
    if (flow) children = flow.jobs.filter((j) => (j.depends_on || []).includes(job.id));
  }
  const canCancel = ['waiting', 'delayed', 'blocked'].includes(job.state) && may(job.queue, 'push');
  const canRedrive = job.state === 'dlq' && may(job.queue, 'admin');
  const canRetry = job.state === 'delayed' && may(job.queue, 'admin');
  const fact = (k, v) => `<dt>${k}</dt><dd>${v}</dd>`;
  el.innerHTML = `
    <div class="crumbs"><a href="#/">Queues</a> / <a href="#/queue/${enc(job.queue)}/${enc(job.state)}">${esc(job.queue)}</a> /</div>
    <h1>${esc(job.name)} ${badge(job.state)}</h1>
    <div class="actions" aria-label="Job actions">
      ${canCancel ? '<button type="button" class="danger" id="cancel">Cancel</button>' : ''}
      ${canRedrive ? '<button type="button" id="redrive">Redrive</button>' : ''}
      ${canRetry ? '<button type="button" id="retry">Retry now</button>' : ''}
      ${job.flow_id ? `<a class="button secondary" href="#/flow/${enc(job.flow_id)}">View flow</a>` : ''}
    </div>
    <div class="grid2">
      <div class="panel"><dl class="facts">
        ${fact('Id', `<span class="mono">${esc(job.id)}</span>`)}
        ${fact('Queue', `<a href="#/queue/${enc(job.queue)}">${esc(job.queue)}</a>`)}
        ${fact('Priority', esc(job.priority))}
        ${fact('Attempts', `${job.attempts} of ${job.max_attempts}`)}
        ${job.group ? fact('Group', esc(job.group)) : ''}
        ${job.flow_id ? fact('Flow', `<a href="#/flow/${enc(job.flow_id)}">${esc(job.flow_id)}</a>`) : ''}
        ${job.unique_key ? fact('Unique key', esc(job.unique_key)) : ''}
        ${fact('Progress', progress(job.progress))}
      </dl></div>
      <div class="panel"><dl class="facts">
        ${fact('Created', time(job.created_at))}
        ${fact('Runs at', time(job.run_at))}
        ${fact('Started', time(job.started_at))}
        ${fact('Lease expires', job.lease_expires_at ? `${time(job.lease_expires_at)} <span class="muted">(fencing: a lease held by one worker; another may take the job after it expires)</span>` : '<span class="muted">no lease</span>')}
        ${fact('Finished', time(job.finished_at))}
      </dl></div>
    </div>
    ${job.error ? `<h2>Error</h2><div class="error-box"><pre class="json" style="background:none;border:none;padding:0">${esc(job.error)}</pre></div>` : ''}
    ${attempts.length ? `<h2>Failed attempts</h2><div class="table-wrap"><table aria-label="Failed attempts"><thead><tr><th class="num">Attempt</th><th>When</th><th>Error</th></tr></thead><tbody>
      ${attempts.map((a) => `<tr><td class="num">${esc(a.attempt)}</td><td>${time(a.at)}</td><td class="wrap">${esc(a.error)}</td></tr>`).join('')}</tbody></table></div>` : ''}
    <div class="grid2">
      <div><h2>Data</h2>${json(job.data)}</div>
      <div><h2>Result</h2>${json(job.result)}</div>
    </div>
    ${job.metadata ? `<h2>Metadata</h2>${json(job.metadata)}` : ''}
    <h2>Logs</h2>
    ${job.logs && job.logs.length ? `<div class="table-wrap"><table aria-label="Logs"><tbody>${job.logs.map((l) => `<tr><td>${time(l.at || l.timestamp)}</td><td class="wrap">${esc(l.message ?? JSON.stringify(l))}</td></tr>`).join('')}</tbody></table></div>` : '<p class="muted">No log lines.</p>'}
    <div class="grid2">
      <div><h2>Parents</h2>${(job.depends_on || []).length ? `<ul>${job.depends_on.map((p) => `<li><a class="mono" href="#/job/${enc(p)}">${esc(p)}</a></li>`).join('')}</ul>` : '<p class="muted">None.</p>'}</div>
      <div><h2>Children</h2>${children.length ? `<ul>${children.map((c) => `<li><a href="#/job/${enc(c.id)}">${esc(c.name)}</a> ${badge(c.state)}</li>`).join('')}</ul>` : '<p class="muted">None.</p>'}</div>
    </div>`;
  q('#cancel')?.addEventListener('click', () => act('Cancelled', () => api('POST', `/api/v1/jobs/${enc(id)}/cancel`), 'Cancel this job?'));
  q('#redrive')?.addEventListener('click', () => act('Redriven', () => api('POST', `/api/v1/jobs/${enc(id)}/redrive`)));
  q('#retry')?.addEventListener('click', () => act('Waiting now', () => api('POST', `/api/v1/jobs/${enc(id)}/retry`)));
}

// layered layout: a job's layer is the longest path from a root
function layout(jobs) {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const depth = new Map();
  const d = (j, seen = new Set()) => {
    if (depth.has(j.id)) return depth.get(j.id);
    if (seen.has(j.id)) return 0;
    seen.add(j.id);
    const ps = (j.depends_on || []).filter((p) => byId.has(p));
    const v = ps.length ? 1 + Math.max(...ps.map((p) => d(byId.get(p), seen))) : 0;
    depth.set(j.id, v);
    return v;
  };
  jobs.forEach((j) => d(j));
  const layers = [];
  jobs.forEach((j) => { (layers[depth.get(j.id)] = layers[depth.get(j.id)] || []).push(j); });
  return layers;
}

async function viewFlow(el, quiet, id) {
  const q = (sel) => el.querySelector(sel);
  let flow;
  try {
    flow = await api('GET', `/api/v1/flows/${enc(id)}`);
  } catch (e) {
    if (e.status === 404) { el.innerHTML = `<div class="panel empty">No flow ${esc(id)} that you may see.</div>`; return; }
    throw e;
  }
  const layers = layout(flow.jobs);
  const W = 170, H = 40, GX = 70, GY = 24;
  const pos = new Map();
  let height = 0;
  layers.forEach((layer, x) => layer.forEach((j, y) => {
    pos.set(j.id, { x: 20 + x * (W + GX), y: 20 + y * (H + GY) });
    height = Math.max(height, 40 + (y + 1) * (H + GY));
  }));
  const width = 40 + layers.length * (W + GX);
  const byId = new Map(flow.jobs.map((j) => [j.id, j]));
  // the blocking path: edges into blocked jobs from parents not completed
  const edges = [];
  flow.jobs.forEach((c) => (c.depends_on || []).forEach((p) => {
    if (!pos.has(p)) return;
    const a = pos.get(p), b = pos.get(c.id);
    const blocking = c.state === 'blocked' && byId.get(p).state !== 'completed';
    edges.push(`<path d="M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}" fill="none" stroke="${blocking ? '#b3261e' : '#9aa5b4'}" stroke-width="${blocking ? 2.5 : 1.5}" ${blocking ? 'stroke-dasharray="6 4" class="blocking"' : ''} marker-end="url(#arrow)"/>`);
  }));
  const nodes = flow.jobs.map((j) => {
    const p = pos.get(j.id);
    const tip = `${j.name} (${j.state})${j.result != null ? '\nresult: ' + JSON.stringify(j.result) : ''}${j.error ? '\nerror: ' + j.error : ''}`;
    return `<a href="#/job/${enc(j.id)}" class="node" data-state="${esc(j.state)}" aria-label="${esc(j.name)}, ${esc(j.state)}">
      <title>${esc(tip)}</title>
      <rect x="${p.x}" y="${p.y}" width="${W}" height="${H}" rx="6" fill="${STATE_COLORS[j.state] || '#444'}"/>
      <text x="${p.x + 10}" y="${p.y + 17}">${esc(j.name.length > 22 ? j.name.slice(0, 21) + '…' : j.name)}</text>
      <text x="${p.x + 10}" y="${p.y + 32}" style="font-size:11px;opacity:.85">${esc(j.state)}${j.queue ? ' · ' + esc(j.queue) : ''}</text></a>`;
  }).join('');
  const counts = flow.counts || {};
  el.innerHTML = `
    <div class="crumbs"><a href="#/">Queues</a> / flows /</div>
    <h1>Flow ${esc(id)}</h1>
    <p>${Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) => `${badge(s)} ${n}`).join(' &nbsp; ') || '<span class="muted">no jobs</span>'}</p>
    <div class="legend">${Object.entries(STATE_COLORS).map(([s, c]) => `<span style="--c:${c}">${s}</span>`).join('')}<span style="--c:#b3261e">dashed red: what a blocked job waits for</span></div>
    <div class="flow-graph"><svg id="flow-svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="The flow's jobs and their dependencies">
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9aa5b4"/></marker></defs>
      ${edges.join('')}${nodes}</svg></div>
    <h2>Jobs</h2>
    <div class="table-wrap"><table aria-label="Flow jobs"><thead><tr><th>Job</th><th>Queue</th><th>State</th><th>Attempts</th><th>Error</th></tr></thead><tbody>
    ${flow.jobs.map((j) => `<tr><td><a href="#/job/${enc(j.id)}">${esc(j.name)}</a></td><td>${esc(j.queue)}</td><td>${badge(j.state)}</td><td class="num">${j.attempts}</td><td class="wrap">${esc(j.error || '')}</td></tr>`).join('')}
    </tbody></table></div>`;
}

// the first 200 jobs in a state of every queue that has some
async function acrossQueues(state) {
  const queues = (await api('GET', '/api/v1/queues')).filter((q) => q[state] > 0);
  const jobs = [];
  await Promise.all(queues.map(async (q) => {
    const page = await api('GET', `/api/v1/queues/${enc(q.name)}/list?state=${state}&count=200`);
    page.jobs.forEach((j) => jobs.push({ ...j, queue: q.name }));
  }));
  return jobs;
}

async function viewDlq(el) {
  const q = (sel) => el.querySelector(sel);
  const dead = await acrossQueues('dlq');
  const groups = new Map();
  dead.forEach((j) => {
    // one group per kind of error: job ids and numbers left out
    const key = String(j.error || '(no error)').split('\n')[0].slice(0, 160)
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '…');
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(j);
  });
  const sorted = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  el.innerHTML = `
    <h1>Dead letters <span class="muted" style="font-size:14px">${dead.length}</span></h1>
    ${dead.length === 0 ? '<div class="panel empty">No dead jobs. Jobs that use up their attempts land here.</div>' : `
    <div class="actions"><button type="button" id="redrive-selected" disabled>Redrive selected</button></div>
    ${sorted.map(([err, jobs], i) => `<details class="group" ${i === 0 ? 'open' : ''}>
      <summary><span class="badge dlq">${jobs.length}</span> <span class="wrap">${esc(err)}</span>
      <span class="muted">${[...new Set(jobs.map((j) => j.queue))].map(esc).join(', ')}</span>
      ${jobs.every((j) => may(j.queue, 'admin')) ? `<button type="button" class="secondary redrive-group" data-ids="${esc(jobs.map((j) => j.id).join(','))}">Redrive these ${jobs.length}</button>` : ''}</summary>
      <div class="table-wrap"><table aria-label="Dead jobs: ${esc(err)}">${JOB_HEAD({ select: true, queue: true })}<tbody>
      ${jobs.map((j) => jobRows([j], { select: may(j.queue, 'admin'), queue: j.queue }).replace('<tr>', `<tr data-queue="${esc(j.queue)}">`)).join('')}
      </tbody></table></div></details>`).join('')}`}`;
  const btn = q('#redrive-selected');
  if (!btn) return;
  el.addEventListener('change', () => { btn.disabled = !el.querySelector('.pick:checked'); });
  el.querySelectorAll('.redrive-group').forEach((b) => b.addEventListener('click', (ev) => {
    ev.preventDefault();
    const ids = b.dataset.ids.split(',');
    act(`${ids.length} job(s) redriven`, () => Promise.all(ids.map((id) => api('POST', `/api/v1/jobs/${enc(id)}/redrive`))),
      `Redrive the ${ids.length} dead job(s) with this error?`);
  }));
  btn.addEventListener('click', () => {
    const ids = [...el.querySelectorAll('.pick:checked')].map((c) => c.value);
    act(`${ids.length} job(s) redriven`, () => Promise.all(ids.map((id) => api('POST', `/api/v1/jobs/${enc(id)}/redrive`))));
  });
}

async function viewLeases(el) {
  const q = (sel) => el.querySelector(sel);
  const rows = await acrossQueues('active');
  rows.sort((a, b) => String(a.lease_expires_at).localeCompare(String(b.lease_expires_at)));
  el.innerHTML = `
    <h1>Leases <span class="muted" style="font-size:14px">${rows.length} active</span></h1>
    <p class="muted">Each active job is leased to one worker until its lease expires; a worker that stops heartbeating loses it, and the job is delivered again. Its acks then need the new lease (fencing).</p>
    ${rows.length === 0 ? '<div class="panel empty">No job is running.</div>' : `
    <div class="table-wrap"><table aria-label="Active jobs"><thead><tr><th>Job</th><th>Queue</th><th>Name</th><th class="num">Attempt</th><th>Progress</th><th>Lease expires</th></tr></thead><tbody>
    ${rows.map((j) => `<tr><td><a class="mono" href="#/job/${enc(j.id)}">${esc(short(j.id))}</a></td><td>${esc(j.queue)}</td><td>${esc(j.name)}</td><td class="num">${j.attempts}/${j.max_attempts}</td><td>${progress(j.progress)}</td><td>${time(j.lease_expires_at)}</td></tr>`).join('')}
    </tbody></table></div>`}`;
}

async function viewWebhooks(el) {
  const q = (sel) => el.querySelector(sel);
  const hooks = await api('GET', '/api/v1/webhooks');
  const withDeliveries = await Promise.all(hooks.map(async (h) => ({
    ...h, deliveries: await api('GET', `/api/v1/webhooks/${enc(h.id)}/deliveries?count=20`).catch(() => [])
  })));
  // failed for good, or failed and waiting for another attempt
  const failed = (d) => d.status === 'failed' || (d.status === 'pending' && d.attempts > 0);
  const failing = (h) => h.deliveries.filter(failed).length;
  withDeliveries.sort((a, b) => failing(b) - failing(a));
  el.innerHTML = `
    <h1>Webhooks <span class="muted" style="font-size:14px">${hooks.length}</span></h1>
    ${hooks.length === 0 ? '<div class="panel empty">No webhooks of yours. Add one with <code>taskq.add_webhook</code> or <code>POST /api/v1/webhooks</code>.</div>' : withDeliveries.map((h) => `
    <section class="panel">
      <h2 style="margin-top:0">${esc(h.url)} ${failing(h) ? `<span class="badge bad">${failing(h)} failing</span>` : '<span class="badge completed">ok</span>'}</h2>
      <p class="muted">${esc((h.events || []).join(', '))}${h.queues ? ' · queues ' + esc(h.queues.join(', ')) : ' · every queue'}</p>
      ${h.deliveries.length ? `<div class="table-wrap"><table aria-label="Deliveries"><thead><tr><th>Event</th><th>Status</th><th class="num">HTTP</th><th class="num">Attempts</th><th>Created</th><th class="num">Latency</th><th>Last error</th><th></th></tr></thead><tbody>
      ${h.deliveries.map((d) => `<tr><td>${esc(d.event)}</td><td>${badge(d.status === 'succeeded' ? 'completed' : d.status === 'failed' ? 'dlq' : d.status === 'delivering' ? 'active' : 'waiting').replace(/>[^<]*</, `>${esc(d.status)}<`)}</td>
        <td class="num">${d.last_status ?? ''}</td><td class="num">${d.attempts}</td><td>${time(d.created_at)}</td>
        <td class="num">${d.delivered_at ? `${Math.max(0, new Date(d.delivered_at) - new Date(d.created_at))} ms` : ''}</td>
        <td class="wrap">${esc(d.last_error || '')}</td>
        <td>${failed(d) ? `<button type="button" class="secondary redeliver" data-id="${esc(d.id)}">Redeliver</button>` : ''}</td></tr>`).join('')}
      </tbody></table></div>` : '<p class="muted">No deliveries yet.</p>'}
    </section>`).join('')}`;
  el.querySelectorAll('.redeliver').forEach((b) => b.addEventListener('click', () => act('Queued for redelivery', () => api('POST', `/api/v1/deliveries/${enc(b.dataset.id)}/redeliver`))));
}

async function viewSchedules(el) {
  const q = (sel) => el.querySelector(sel);
  let rows;
  try {
    rows = await api('GET', '/api/v1/schedules');
  } catch (e) {
    el.innerHTML = `<h1>Schedules</h1>${errorBox(e)}<p class="muted">Schedules need pg_cron in this database.</p>`;
    return;
  }
  el.innerHTML = `
    <h1>Schedules <span class="muted" style="font-size:14px">${rows.length}</span></h1>
    ${rows.length === 0 ? '<div class="panel empty">No schedules. Add one with <code>taskq.schedule</code>.</div>' : `
    <div class="table-wrap"><table aria-label="Schedules"><thead><tr><th>Name</th><th>Cron</th><th>Queue</th><th>Job</th><th>Active</th></tr></thead><tbody>
    ${rows.map((s) => `<tr><td>${esc(s.name)}</td><td class="mono">${esc(s.cron)}</td><td><a href="#/queue/${enc(s.queue)}">${esc(s.queue)}</a></td><td>${esc(s.job_name)}</td><td>${s.active ? 'yes' : 'no'}</td></tr>`).join('')}
    </tbody></table></div>`}`;
}

// ---------------------------------------------------------------------------
// routing
// ---------------------------------------------------------------------------

const ROUTES = [
  [/^#\/?$/, 'overview', viewOverview],
  [/^#\/queue\/([^/?]+)(?:\/([a-z]+))?/, 'overview', viewQueue],
  [/^#\/job\/([^/?]+)/, 'overview', viewJob],
  [/^#\/flow\/([^/?]+)/, 'overview', viewFlow],
  [/^#\/dlq/, 'dlq', viewDlq],
  [/^#\/leases/, 'leases', viewLeases],
  [/^#\/webhooks/, 'webhooks', viewWebhooks],
  [/^#\/schedules/, 'schedules', viewSchedules]
];

async function refresh(quiet) {
  if (!current) return;
  if (quiet && (current.paged || document.activeElement?.closest?.('form, details[open] input, .actions, #settings-panel'))) return;
  const seq = ++renderSeq;
  const el = document.createElement('div');
  try {
    await current.fn(el, quiet, ...current.args);
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e.status === 401) return;
    if (quiet) { setLive('polling'); return; }
    el.innerHTML = errorBox(e);
  }
  if (seq !== renderSeq) return;
  const main = $('#main');
  // keep open groups and selections across live updates
  const open = [...main.querySelectorAll('details[open] summary')].map((s) => s.textContent);
  const checked = [...main.querySelectorAll('.pick:checked')].map((c) => c.value);
  // the view's listeners are on el and below it: el goes in whole
  main.replaceChildren(el);
  if (quiet) {
    main.querySelectorAll('details summary').forEach((s) => { if (open.includes(s.textContent)) s.parentElement.open = true; });
    main.querySelectorAll('.pick').forEach((c) => { if (checked.includes(c.value)) { c.checked = true; c.dispatchEvent(new Event('change', { bubbles: true })); } });
  }
  main.dataset.view = current.name;
}

async function route() {
  if (!token()) {
    if (location.hash !== '#/login') location.hash = '#/login';
    renderLogin();
    return;
  }
  if (location.hash === '#/login') { location.hash = '#/'; return; }
  if (!me) {
    try {
      me = await api('GET', '/api/v1/whoami');
    } catch (e) {
      if (e.status === 401) { signOut('Your token was refused: sign in again.'); return; }
      $('#main').innerHTML = errorBox(e);
      return;
    }
  }
  $('#top').hidden = false;
  $('#who').textContent = me.role + (me.admin ? ' (admin)' : '');
  startLive();
  const hash = decodeURIComponent(location.hash || '#/');
  for (const [re, nav, fn] of ROUTES) {
    const m = hash.match(re);
    if (!m) continue;
    document.querySelectorAll('.top nav a').forEach((a) => a.setAttribute('aria-current', a.dataset.nav === nav && (nav !== 'overview' || hash === '#/' || hash === '#') ? 'page' : 'false'));
    current = { name: fn.name.replace(/^view/, '').toLowerCase(), fn, args: m.slice(1).filter((x) => x !== undefined), paged: false };
    document.title = `taskq · ${current.name}`;
    await refresh(false);
    $('#main').focus({ preventScroll: true });
    return;
  }
  $('#main').innerHTML = '<div class="panel empty">No such page. <a href="#/">Back to the queues</a>.</div>';
}

// keyboard: "/" to the filters' first field, "g" then o/d/l/w/s to a view
let gPending = false;
document.addEventListener('keydown', (ev) => {
  if (ev.target.closest('input, textarea, select') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === '/') {
    const f = $('#filters input');
    if (f) { ev.preventDefault(); f.focus(); }
  } else if (ev.key === 'g') {
    gPending = true;
    setTimeout(() => { gPending = false; }, 1000);
  } else if (gPending) {
    const to = { o: '#/', d: '#/dlq', l: '#/leases', w: '#/webhooks', s: '#/schedules' }[ev.key];
    if (to) location.hash = to;
    gPending = false;
  }
});

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', () => {
  $('#logout').addEventListener('click', () => signOut());
  route();
});
