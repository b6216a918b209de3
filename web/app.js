/*
 * The QA page of smtp-emulator: talks to the control API on the same origin
 * (relative URLs, so it also works behind a path prefix). It polls
 * /api/v1/sessions?since=ID every second for new and still active sessions,
 * and the messages, clock, scenario and state every few seconds.
 *
 * Every text that comes from the API goes into the page through textContent
 * or text nodes (the h() helper), never through innerHTML.
 */
'use strict';

(() => {
  const TOKEN_KEY = 'smtp-emulator.api-token';
  const POLL_MS = 1000;
  const HIDDEN_POLL_MS = 5000;
  const RESYNC_EVERY = 15; // ticks between full reloads of the session list
  const MAX_SESSIONS = 500; // kept in the page
  const MAX_MESSAGES = 200;
  const RAW_SHOWN = 256 * 1024; // bytes of a raw message shown inline

  const $ = (id) => document.getElementById(id);

  /* ---------------------------------------------------------------- */
  /* DOM helpers                                                       */

  // h('td', {class: 'x'}, 'text', node, [more]): strings become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k.startsWith('on') && typeof v === 'function') {
          el.addEventListener(k.slice(2), v);
        } else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  // Replaces el's children; like h(), skips null and makes strings text.
  function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
  }

  function setText(el, text) {
    const t = text === null || text === undefined ? '' : String(text);
    if (el.textContent !== t) el.textContent = t;
  }

  function show(el, visible) {
    el.hidden = !visible;
  }

  // "2026-11-25T17:55:18.254Z" -> "17:55:18.254" (UTC, like the API).
  function clockOf(iso, ms) {
    if (!iso) return '—';
    return String(iso).slice(11, ms ? 23 : 19);
  }

  function timeEl(iso, ms) {
    if (!iso) return h('span', null, '—');
    return h('time', {datetime: iso, title: iso}, clockOf(iso, ms));
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }

  function fmtBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function fmtDuration(sec) {
    if (!Number.isFinite(sec)) return '—';
    const s = Math.round(sec);
    const sign = s < 0 ? '-' : '';
    let a = Math.abs(s);
    const d = Math.floor(a / 86400);
    a %= 86400;
    const hh = Math.floor(a / 3600);
    a %= 3600;
    const mm = Math.floor(a / 60);
    const ss = a % 60;
    const parts = [];
    if (d) parts.push(`${d} d`);
    if (hh) parts.push(`${hh} h`);
    if (mm) parts.push(`${mm} min`);
    if (ss || !parts.length) parts.push(`${ss} s`);
    return sign + parts.join(' ');
  }

  function safeFileName(s) {
    return String(s).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80) || 'file';
  }

  /* ---------------------------------------------------------------- */
  /* The API                                                           */

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let memoryToken = ''; // only where sessionStorage is unavailable

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function setToken(token) {
    memoryToken = '';
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      /* storage disabled: the token lives until reload */
      memoryToken = token;
    }
  }

  // as: 'json' (default), 'text' or 'bytes'.
  async function api(method, path, body, as) {
    const headers = {Accept: as === 'json' || !as ? 'application/json' : '*/*'};
    const token = getToken() || memoryToken;
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = {method, headers, cache: 'no-store', credentials: 'same-origin'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `the API cannot be reached (${e.message})`);
    }
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`.trim();
      try {
        const j = await res.json();
        if (j && typeof j.error === 'string') msg = j.error;
      } catch (e) {
        /* not JSON: keep the status line */
      }
      if (res.status === 401) needToken(msg);
      throw new ApiError(res.status, msg);
    }
    if (as === 'bytes') return new Uint8Array(await res.arrayBuffer());
    if (as === 'text') return res.text();
    if (res.status === 204) return null;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  /* ---------------------------------------------------------------- */
  /* State                                                             */

  const st = {
    scenarios: [],
    active: null, // {name, params}
    listeners: [],
    sessions: new Map(), // id -> summary (no transcript)
    maxId: 0,
    messages: [],
    selected: null, // {kind: 'session'|'message', id}
    selectedSig: '',
    tick: 0,
    timer: 0,
    running: false,
    started: false,
    tokenNeeded: false,
    formDirty: false,
    blobUrls: [],
  };

  /* ---------------------------------------------------------------- */
  /* Status lines                                                      */

  function connStatus(text, kind) {
    const el = $('conn-status');
    setText(el, text);
    el.className = `conn ${kind || ''}`;
  }

  function actionStatus(text, isError) {
    const el = $('action-status');
    // Clear first so that the same message is announced again.
    el.textContent = '';
    el.className = `action-status${isError ? ' is-error' : ''}`;
    window.setTimeout(() => setText(el, text), 30);
  }

  function needToken(msg) {
    if (st.tokenNeeded) return;
    st.tokenNeeded = true;
    document.body.classList.add('token-needed');
    const had = !!(getToken() || memoryToken);
    connStatus(had ? `The API refused the token: ${msg}. Paste the right one in "API token".`
                   : `The API needs a token (--api-token): paste it in "API token". (${msg})`,
               'bad');
    $('token-box').open = true;
    $('token-input').focus();
  }

  function updateTokenForm() {
    const has = !!(getToken() || memoryToken);
    $('token-input').placeholder = has ? 'saved for this tab' : '';
    $('btn-token-forget').disabled = !has;
    setText($('token-summary'), has ? 'API token (set)' : 'API token');
  }

  /* ---------------------------------------------------------------- */
  /* Scenario                                                          */

  function paramsSummary(params) {
    const keys = Object.keys(params || {});
    if (!keys.length) return 'default parameters';
    return keys.map((k) => `${k}=${params[k]}`).join(', ');
  }

  function renderActive() {
    const a = st.active;
    setText($('active-scenario-name'), a ? a.name : '—');
    setText($('active-scenario-params'), a ? `(${paramsSummary(a.params)})` : '');
    const ul = $('listener-overrides');
    const own = st.listeners.filter((l) => l.scenario && l.scenario.follows_default === false);
    ul.replaceChildren(...own.map((l) => h('li', null, 'Listener ', h('code', null, l.address),
      ' has its own scenario: ', h('strong', null, l.scenario.name),
      ` (${paramsSummary(l.scenario.params)})`)));
    show(ul, own.length > 0);
  }

  function typeHint(type, help) {
    if (/comma/i.test(help || '')) return '';
    switch (type) {
      case 'list': return ' A comma-separated list.';
      case 'cidrs': return ' Comma-separated addresses or CIDRs.';
      case 'integer': return ' A whole number.';
      case 'number': return ' A number.';
      case 'boolean': return ' true or false.';
      default: return '';
    }
  }

  function sentence(text) {
    const t = String(text || '').trim();
    if (!t) return '';
    return /[.!?]$/.test(t) ? t : `${t}.`;
  }

  function fieldId(name) {
    return `param-${String(name).replace(/[^A-Za-z0-9_-]/g, '_')}`;
  }

  function renderScenarioForm(name, values) {
    const select = $('scenario-select');
    if (select.options.length !== st.scenarios.length ||
        [...select.options].some((o, i) => o.value !== st.scenarios[i].name)) {
      select.replaceChildren(...st.scenarios.map((s) => h('option', {value: s.name}, s.name)));
    }
    let sc = st.scenarios.find((s) => s.name === name);
    if (!sc && name) {
      // Loaded from a path the list does not name: show it as it is.
      sc = {name, description: 'A scenario that GET /api/v1/scenarios does not list.',
        replies: '', params: []};
      select.append(h('option', {value: name}, name));
    }
    if (!sc) sc = st.scenarios[0];
    if (!sc) return;
    select.value = sc.name;
    setText($('scenario-description'), sc.description || '');
    setText($('scenario-replies'), sc.replies || '');
    show($('scenario-replies-box'), !!sc.replies);
    clearScenarioError();
    const box = $('scenario-params-fields');
    box.replaceChildren();
    const params = sc.params || [];
    if (!params.length) {
      box.append(h('p', {class: 'hint'}, 'This scenario has no parameters.'));
    }
    for (const p of params) {
      const id = fieldId(p.name);
      const helpId = `${id}-help`;
      const v = values && Object.prototype.hasOwnProperty.call(values, p.name)
        ? String(values[p.name]) : '';
      let control;
      if (Array.isArray(p.choices) && p.choices.length) {
        const opts = [h('option', {value: ''}, `default (${p.default})`)];
        for (const c of p.choices) opts.push(h('option', {value: c}, c));
        if (v && !p.choices.includes(v)) opts.push(h('option', {value: v}, v));
        control = h('select', {id, name: p.name, 'aria-describedby': helpId}, opts);
      } else {
        control = h('input', {
          type: 'text', id, name: p.name, placeholder: p.default,
          'aria-describedby': helpId, spellcheck: 'false', autocomplete: 'off',
          inputmode: p.type === 'integer' || p.type === 'number' ? 'decimal' : null,
        });
      }
      control.value = v;
      control.dataset.param = p.name;
      box.append(h('div', {class: 'field'},
        h('label', {for: id}, p.name, ' ', h('span', {class: 'type'}, p.type)),
        control,
        h('p', {id: helpId, class: 'help'}, sentence(p.help),
          p.default !== '' && p.default !== undefined ? ` Default: ${p.default}.` : '',
          typeHint(p.type, p.help))));
    }
  }

  function clearScenarioError() {
    const err = $('scenario-error');
    err.textContent = '';
    show(err, false);
    for (const el of $('scenario-params-fields').querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
      el.setAttribute('aria-describedby', `${el.id}-help`);
    }
  }

  function showScenarioError(msg) {
    const err = $('scenario-error');
    err.replaceChildren(h('strong', null, 'Not applied. '), h('span', {class: 'api-error'}, msg));
    show(err, true);
    // Point at the parameter the API named, if any.
    const m = /parameter '([^']+)'/.exec(msg);
    if (m) {
      const el = $('scenario-params-fields').querySelector(`#${CSS.escape(fieldId(m[1]))}`);
      if (el) {
        el.setAttribute('aria-invalid', 'true');
        el.setAttribute('aria-describedby', `${el.id}-help scenario-error`);
      }
    }
  }

  async function applyScenario(ev) {
    ev.preventDefault();
    const name = $('scenario-select').value;
    const params = {};
    for (const el of $('scenario-params-fields').querySelectorAll('[data-param]')) {
      if (el.value !== '') params[el.dataset.param] = el.value;
    }
    const btn = $('btn-apply-scenario');
    btn.disabled = true;
    clearScenarioError();
    try {
      const sel = await api('PUT', 'api/v1/scenario', {name, params});
      st.active = sel;
      st.formDirty = false;
      renderActive();
      actionStatus(`Scenario ${sel.name} is now the default for new sessions (${paramsSummary(sel.params)}).`);
    } catch (e) {
      if (e.status === 401) return;
      showScenarioError(e.message);
    } finally {
      btn.disabled = false;
    }
  }

  async function loadScenarios() {
    st.scenarios = await api('GET', 'api/v1/scenarios');
    st.scenarios.sort((a, b) => a.name.localeCompare(b.name));
    st.active = await api('GET', 'api/v1/scenario');
    renderActive();
    renderScenarioForm(st.active.name, st.active.params);
    st.formDirty = false;
  }

  async function pollScenario() {
    const [sel, listeners] = await Promise.all([
      api('GET', 'api/v1/scenario'), api('GET', 'api/v1/listeners')]);
    const changed = JSON.stringify(sel) !== JSON.stringify(st.active);
    st.active = sel;
    st.listeners = Array.isArray(listeners) ? listeners : [];
    renderActive();
    // Someone else switched it (curl, a test): follow, unless the user
    // is editing the form.
    if (changed && !st.formDirty) renderScenarioForm(sel.name, sel.params);
  }

  /* ---------------------------------------------------------------- */
  /* Clock and state                                                   */

  function renderClock(c) {
    setText($('clock-time'), c.time ? `${c.time.replace('T', ' ').replace('Z', '')} UTC` : '—');
    const off = Number(c.offset) || 0;
    setText($('clock-offset'), off === 0 ? '0 s (real time)'
      : `${off > 0 ? '+' : ''}${fmtDuration(off)} (${off} s)`);
  }

  async function pollClock() {
    renderClock(await api('GET', 'api/v1/clock'));
  }

  async function advanceClock(ev) {
    ev.preventDefault();
    const raw = $('clock-advance').value.trim();
    const n = Number(raw);
    const err = $('clock-error');
    show(err, false);
    try {
      // A non-number goes as typed, so the API's own message is shown.
      const c = await api('POST', 'api/v1/clock', {advance: raw !== '' && Number.isFinite(n) ? n : raw});
      renderClock(c);
      actionStatus(`Clock advanced by ${raw} s; offset is now ${c.offset} s.`);
      pollState().catch(() => {});
    } catch (e) {
      if (e.status === 401) return;
      setText(err, e.message);
      show(err, true);
    }
  }

  async function pollState() {
    const entries = await api('GET', 'api/v1/state');
    setText($('state-count'), entries.length === 1 ? '1 entry' : `${entries.length} entries`);
    $('state-rows').replaceChildren(...entries.map((e) => h('tr', null,
      h('td', null, e.scenario === null ? '—' : e.scenario),
      h('td', {class: 'mono'}, e.key),
      h('td', {class: 'mono'}, e.value),
      h('td', null, e.ttl === undefined ? 'never' : fmtDuration(e.ttl)))));
  }

  async function resetState() {
    try {
      await api('DELETE', 'api/v1/state');
      actionStatus('Shared state reset (greylisting triplets, counters).');
      await pollState();
    } catch (e) {
      if (e.status !== 401) actionStatus(`Reset failed: ${e.message}`, true);
    }
  }

  /* ---------------------------------------------------------------- */
  /* Sessions                                                          */

  const rowCache = new Map(); // id -> {tr, sig, button}

  function sessionSig(s) {
    return JSON.stringify([s.outcome, s.end, s.scenario, s.helo, s.messages, s.client]);
  }

  function sessionText(s) {
    return [s.id, `#${s.id}`, s.client && s.client.address, s.peer && s.peer.address,
      s.client && s.client.port, s.listener, s.scenario, s.helo,
      s.outcome && s.outcome.result, s.outcome && s.outcome.code, s.outcome && s.outcome.stage,
      s.tls && s.tls.version, s.auth && s.auth.user].join(' ').toLowerCase();
  }

  function sessionMatches(s) {
    const want = $('filter-outcome').value;
    if (want && (!s.outcome || s.outcome.result !== want)) return false;
    const q = $('filter-text').value.trim().toLowerCase();
    if (!q) return true;
    const hay = sessionText(s);
    return q.split(/\s+/).every((w) => hay.includes(w));
  }

  function outcomeBadge(result) {
    return h('span', {class: `badge badge-${String(result).replace(/[^a-z_]/g, '')}`}, result);
  }

  function clientCell(s) {
    const c = s.client || {};
    const cell = [h('span', {class: 'mono'}, c.address || '?')];
    if (s.simulated && s.peer) {
      cell.push(h('span', {class: 'sub', title: 'simulated with XCLIENT or PROXY'},
        ` via ${s.peer.address}`));
    }
    if (s.tls) cell.push(h('span', {class: 'tag', title: `TLS: ${s.tls.version}`}, 'TLS'));
    return cell;
  }

  function fillSessionRow(row, s) {
    const o = s.outcome || {};
    const tr = row.tr;
    tr.className = `outcome-${String(o.result).replace(/[^a-z_]/g, '')}`;
    const cells = tr.children;
    fill(row.when, timeEl(s.start, false));
    fill(cells[1], clientCell(s));
    fill(cells[2], s.scenario || '—');
    fill(cells[3], outcomeBadge(o.result || '?'));
    const code = o.code || o.last_code;
    fill(cells[4], code ? String(code) : '—');
    fill(cells[5], o.stage || '—');
    row.button.setAttribute('aria-label',
      `Session ${s.id}: ${o.result || ''}${o.code ? ` ${o.code}` : ''}; show the transcript`);
  }

  function makeSessionRow(s) {
    const button = h('button', {type: 'button', class: 'row-link', 'data-session': s.id},
      `#${s.id}`);
    button.addEventListener('click', () => openSession(s.id, true));
    const when = h('span', {class: 'when'});
    const tr = h('tr', {'data-id': s.id}, h('td', {class: 'sess'}, button, when),
      h('td'), h('td', {class: 'scen'}), h('td'), h('td', {class: 'code'}), h('td'));
    // A click anywhere on the row does what the row's button does.
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('button, a, input, select')) return;
      openSession(s.id, false);
    });
    const row = {tr, button, when, sig: ''};
    return row;
  }

  function renderSessions() {
    const tbody = $('sessions-rows');
    const ids = [...st.sessions.keys()].sort((a, b) => b - a);
    let prev = null;
    let shown = 0;
    for (const id of ids) {
      const s = st.sessions.get(id);
      let row = rowCache.get(id);
      if (!row) {
        row = makeSessionRow(s);
        rowCache.set(id, row);
      }
      const sig = sessionSig(s);
      if (row.sig !== sig) {
        fillSessionRow(row, s);
        row.sig = sig;
      }
      const match = sessionMatches(s);
      row.tr.hidden = !match;
      if (match) shown++;
      const isSel = st.selected && st.selected.kind === 'session' && st.selected.id === id;
      row.tr.classList.toggle('selected', !!isSel);
      if (isSel) row.button.setAttribute('aria-current', 'true');
      else row.button.removeAttribute('aria-current');
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [id, row] of rowCache) {
      if (!st.sessions.has(id)) {
        row.tr.remove();
        rowCache.delete(id);
      }
    }
    const total = st.sessions.size;
    setText($('sessions-count'), total === 0 ? 'No sessions yet: point a client at the SMTP listener.'
      : shown === total ? `${plural(total, 'session')}, newest first; times in UTC.`
        : `Showing ${shown} of ${plural(total, 'session')}.`);
  }

  function describeSession(s) {
    const o = s.outcome || {};
    let t = `session ${s.id} from ${s.client ? s.client.address : '?'}: ${o.result}`;
    if (o.code) t += ` ${o.code}`;
    if (o.stage) t += ` at ${o.stage}`;
    return t;
  }

  function trimSessions() {
    if (st.sessions.size <= MAX_SESSIONS) return;
    const ids = [...st.sessions.keys()].sort((a, b) => a - b);
    for (const id of ids.slice(0, st.sessions.size - MAX_SESSIONS)) st.sessions.delete(id);
  }

  async function pollSessions(full) {
    let since = st.maxId;
    // Sessions still in flight are fetched again until they end.
    for (const s of st.sessions.values()) {
      if (s.outcome && s.outcome.result === 'active' && s.id - 1 < since) since = s.id - 1;
    }
    const url = full ? `api/v1/sessions?limit=${MAX_SESSIONS}`
      : `api/v1/sessions?since=${since}&limit=${MAX_SESSIONS}`;
    const list = await api('GET', url);
    const fresh = [];
    if (full) {
      const keep = new Set(list.map((s) => s.id));
      for (const id of [...st.sessions.keys()]) if (!keep.has(id)) st.sessions.delete(id);
      st.maxId = 0;
    }
    for (const s of list) {
      if (!st.sessions.has(s.id) && s.id > st.maxId && st.started) fresh.push(s);
      st.sessions.set(s.id, s);
    }
    for (const s of list) if (s.id > st.maxId) st.maxId = s.id;
    trimSessions();
    renderSessions();
    if (fresh.length) {
      const newest = fresh.reduce((a, b) => (a.id > b.id ? a : b));
      setText($('sessions-live'), fresh.length === 1 ? `New ${describeSession(newest)}.`
        : `${fresh.length} new sessions; newest: ${describeSession(newest)}.`);
    }
    // Keep an open session's detail current while it is in flight.
    const sel = st.selected;
    if (sel && sel.kind === 'session') {
      const s = st.sessions.get(sel.id);
      if (s && sessionSig(s) !== st.selectedSig) openSession(sel.id, false, true);
    }
  }

  async function clearSessions() {
    try {
      await api('DELETE', 'api/v1/sessions');
      await pollSessions(true);
      if (st.selected && st.selected.kind === 'session' && !st.sessions.has(st.selected.id)) {
        clearDetail();
      }
      actionStatus('Ended sessions cleared (sessions in flight are kept).');
    } catch (e) {
      if (e.status !== 401) actionStatus(`Clearing sessions failed: ${e.message}`, true);
    }
  }

  /* ---------------------------------------------------------------- */
  /* Details: shared                                                   */

  let detailSeq = 0;
  let lastOpener = null;

  function revokeBlobs() {
    for (const u of st.blobUrls) URL.revokeObjectURL(u);
    st.blobUrls = [];
  }

  function blobLink(bytesOrText, type, fileName, label) {
    const url = URL.createObjectURL(new Blob([bytesOrText], {type}));
    st.blobUrls.push(url);
    return h('a', {href: url, download: fileName, class: 'button-link'}, label);
  }

  function clearDetail() {
    revokeBlobs();
    st.selected = null;
    st.selectedSig = '';
    $('detail-body').replaceChildren();
    setText($('detail-heading'), 'Details');
    show($('detail-empty'), true);
    setHash('');
    renderSessions();
    renderMessages();
  }

  function setHash(h2) {
    const url = h2 ? `#${h2}` : window.location.pathname + window.location.search;
    if (window.location.hash !== (h2 ? `#${h2}` : '')) window.history.replaceState(null, '', url);
  }

  function fact(dt, ...dd) {
    return [h('dt', null, dt), h('dd', null, ...dd)];
  }

  function backButton() {
    const b = h('button', {type: 'button', class: 'back'}, 'Back to the list');
    b.addEventListener('click', () => {
      const target = lastOpener && document.contains(lastOpener) ? lastOpener : $('sessions-heading');
      target.focus();
    });
    return b;
  }

  function focusDetail(focus) {
    if (focus) $('detail-heading').focus();
  }

  /* ---------------------------------------------------------------- */
  /* Details: a session                                                */

  // The server lines of the reply through which the scenario acted: the
  // last reply carrying the outcome's code.
  // The scenario's replies: the lines the API marks ("scenario": true);
  // for a transcript without marks, the last server reply with the
  // outcome's code.
  function actedLines(lines, code) {
    const marked = new Set();
    lines.forEach((l, i) => { if (l.scenario) marked.add(i); });
    if (marked.size || !code) return marked;
    const c = String(code);
    let i = lines.length - 1;
    for (; i >= 0; i--) {
      const l = lines[i];
      if (l.dir === 'server' && (l.line === c || l.line.startsWith(`${c} `))) break;
    }
    if (i < 0) return marked;
    marked.add(i);
    for (let j = i - 1; j >= 0; j--) {
      const l = lines[j];
      if (l.dir !== 'server' || !l.line.startsWith(`${c}-`)) break;
      marked.add(j);
    }
    return marked;
  }

  function transcriptList(s) {
    const lines = Array.isArray(s.transcript) ? s.transcript : [];
    const o = s.outcome || {};
    const acted = lines.some((l) => l.scenario) || o.result !== 'delivered'
      ? actedLines(lines, o.code) : new Set();
    const lastActed = acted.size ? Math.max(...acted) : -1;
    const items = lines.map((l, i) => {
      const dir = l.dir === 'client' || l.dir === 'server' ? l.dir : 'note';
      const tag = dir === 'client' ? 'C:' : dir === 'server' ? 'S:' : '#';
      const title = dir === 'client' ? 'client to server' : dir === 'server' ? 'server to client' : 'note';
      const li = h('li', {class: `line ${dir}${acted.has(i) ? ' acted' : ''}`},
        h('span', {class: 't'}, timeEl(l.time, true)),
        h('abbr', {class: 'dir', title}, tag),
        h('span', {class: 'text'}, l.line));
      if (l.eol === 'lf') li.append(h('span', {class: 'eol', title: 'the line ended in a bare LF'}, 'LF only'));
      if (l.eol === 'none') li.append(h('span', {class: 'eol', title: 'no line end'}, 'no line end'));
      if (i === lastActed) {
        li.append(h('span', {class: 'acted-badge'}, `scenario acted here${o.stage ? ` (stage ${o.stage})` : ''}`));
      }
      return li;
    });
    if (lastActed < 0 && o.stage && o.result !== 'active') {
      items.push(h('li', {class: 'line marker acted'},
        h('span', {class: 't'}, timeEl(s.end, true)),
        h('abbr', {class: 'dir', title: 'what the scenario did'}, '!'),
        h('span', {class: 'text'}, `The scenario acted at stage ${o.stage}: ${o.result}${o.code ? ` (${o.code})` : ''}.`)));
    }
    return h('ol', {class: 'transcript', 'aria-label': `Transcript of session ${s.id}`}, items);
  }

  function tlsFacts(tls) {
    if (!tls) return fact('TLS', 'none (plain text)');
    const out = [fact('TLS', `${tls.version || '?'}, ${tls.cipher || '?'}`)];
    const c = tls.client_cert;
    if (!c) {
      out.push(fact('Client certificate', 'none presented'));
    } else {
      out.push(fact('Certificate subject', h('span', {class: 'mono'}, c.subject || '—')));
      out.push(fact('Certificate issuer', h('span', {class: 'mono'}, c.issuer || '—')));
      if (Array.isArray(c.sans) && c.sans.length) {
        out.push(fact('Certificate SANs', h('span', {class: 'mono'}, c.sans.join(', '))));
      }
      out.push(fact('Certificate verified',
        h('span', {class: c.verified ? 'yes' : 'no'}, c.verified ? 'yes' : 'no'),
        c.error ? ` (${c.error})` : ''));
    }
    return out;
  }

  async function openSession(id, focus, quiet) {
    // A quiet refresh never overtakes what the user asked for since.
    const seq = quiet ? detailSeq : ++detailSeq;
    if (!quiet) {
      const row = rowCache.get(id);
      lastOpener = row ? row.button : document.activeElement;
    }
    let s;
    let text = '';
    let msgs = [];
    try {
      [s, text, msgs] = await Promise.all([
        api('GET', `api/v1/sessions/${encodeURIComponent(id)}`),
        api('GET', `api/v1/sessions/${encodeURIComponent(id)}/transcript`, undefined, 'text'),
        api('GET', `api/v1/messages?session=${encodeURIComponent(id)}`),
      ]);
    } catch (e) {
      if (seq !== detailSeq) return;
      if (e.status === 401) return;
      if (!quiet) actionStatus(`Cannot show session ${id}: ${e.message}`, true);
      return;
    }
    if (seq !== detailSeq) return;
    if (quiet && !(st.selected && st.selected.kind === 'session' && st.selected.id === id)) return;
    // A refresh while the user reads: keep their scroll position.
    const body = $('detail-body');
    const scroll = quiet ? $('detail').scrollTop : 0;
    revokeBlobs();
    st.selected = {kind: 'session', id};
    st.selectedSig = sessionSig(s);
    if (st.sessions.has(id)) st.sessions.set(id, Object.assign({}, s, {transcript: undefined}));
    const o = s.outcome || {};
    setText($('detail-heading'), `Session #${s.id}`);
    show($('detail-empty'), false);
    const client = s.client || {};
    const facts = [
      fact('Outcome', outcomeBadge(o.result || '?')),
      fact('Reply code', (o.code || o.last_code) ? String(o.code || o.last_code) : '—'),
      fact('Stage where the scenario acted', o.stage || '—'),
      fact('Client', h('span', {class: 'mono'}, `${client.address}:${client.port}`),
        s.simulated && s.peer ? ` (simulated; connection from ${s.peer.address}:${s.peer.port})` : ''),
      fact('Listener', h('span', {class: 'mono'}, s.listener || '—')),
      fact('Scenario', s.scenario || '—'),
      fact('HELO/EHLO', s.helo === null || s.helo === undefined ? '—' : h('span', {class: 'mono'}, s.helo)),
      fact('Started', timeEl(s.start, true)),
      fact('Ended', s.end ? timeEl(s.end, true) : 'still active'),
      tlsFacts(s.tls),
      fact('AUTH', s.auth ? `${s.auth.user} (${s.auth.mechanism})` : 'none'),
      fact('Messages', String(s.messages || 0)),
    ];
    const msgButtons = (Array.isArray(msgs) ? msgs : []).map((m) => {
      const b = h('button', {type: 'button', class: 'row-link'}, m.id);
      b.addEventListener('click', () => openMessage(m.id, true));
      return h('li', null, b, ' ', m.subject ? `“${m.subject}”` : '(no subject)');
    });
    fill(body,
      h('div', {class: 'detail-actions'}, backButton(),
        blobLink(text, 'text/plain;charset=utf-8', `session-${s.id}.txt`, 'Download transcript (.txt)')),
      h('dl', {class: 'facts'}, facts),
      msgButtons.length ? h('div', null, h('h3', null, 'Messages of this session'),
        h('ul', {class: 'plain'}, msgButtons)) : null,
      h('h3', null, 'Transcript'),
      h('p', {class: 'legend'},
        h('span', {class: 'legend-client'}, 'C: client'), ' ',
        h('span', {class: 'legend-server'}, 'S: server'), ' ',
        h('span', {class: 'legend-note'}, '# note'), ' · times in UTC'),
      s.transcript_truncated ? h('p', {class: 'warn'}, 'The transcript was cut at the recording limit.') : null,
      transcriptList(s));
    if (quiet) $('detail').scrollTop = scroll;
    else $('detail').scrollTop = 0;
    setHash(`session-${s.id}`);
    renderSessions();
    renderMessages();
    focusDetail(focus);
  }

  /* ---------------------------------------------------------------- */
  /* Messages                                                          */

  const msgRowCache = new Map();

  function messageText(m) {
    return [m.id, m.from, ...(m.to || []), m.subject, `session ${m.session}`].join(' ').toLowerCase();
  }

  function renderMessages() {
    const tbody = $('messages-rows');
    const q = $('filter-messages').value.trim().toLowerCase();
    let prev = null;
    let shown = 0;
    const seen = new Set();
    for (const m of st.messages) {
      seen.add(m.id);
      let row = msgRowCache.get(m.id);
      if (!row) {
        const button = h('button', {type: 'button', class: 'row-link',
          'aria-label': `Message ${m.id}: show headers and body`}, m.id);
        button.addEventListener('click', () => openMessage(m.id, true));
        const tr = h('tr', {'data-id': m.id},
          h('td', {class: 'sess'}, button, h('span', {class: 'when'}, timeEl(m.time, false))),
          h('td', {class: 'mono'}, m.from === '' ? '<>' : m.from),
          h('td', {class: 'mono'}, (m.to || []).join(', ')),
          h('td', null, m.subject === null ? '(no subject)' : decodeWords(m.subject)),
          h('td', {class: 'num'}, fmtBytes(m.size)));
        tr.addEventListener('click', (ev) => {
          if (ev.target.closest('button, a')) return;
          openMessage(m.id, false);
        });
        row = {tr, button};
        msgRowCache.set(m.id, row);
      }
      const match = !q || q.split(/\s+/).every((w) => messageText(m).includes(w));
      row.tr.hidden = !match;
      if (match) shown++;
      const isSel = st.selected && st.selected.kind === 'message' && st.selected.id === m.id;
      row.tr.classList.toggle('selected', !!isSel);
      if (isSel) row.button.setAttribute('aria-current', 'true');
      else row.button.removeAttribute('aria-current');
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [id, row] of msgRowCache) {
      if (!seen.has(id)) {
        row.tr.remove();
        msgRowCache.delete(id);
      }
    }
    const total = st.messages.length;
    setText($('messages-count'), total === 0 ? 'No messages captured.'
      : shown === total ? `${plural(total, 'message')}, newest first; times in UTC.`
        : `Showing ${shown} of ${plural(total, 'message')}.`);
  }

  async function pollMessages() {
    const list = await api('GET', `api/v1/messages?limit=${MAX_MESSAGES}`);
    const before = new Set(st.messages.map((m) => m.id));
    const changed = list.length !== st.messages.length || list.some((m, i) => st.messages[i].id !== m.id);
    if (!changed) return;
    const fresh = st.started ? list.filter((m) => !before.has(m.id)) : [];
    st.messages = list;
    renderMessages();
    if (fresh.length) {
      setText($('messages-live'), fresh.length === 1
        ? `New message ${fresh[0].id} from ${fresh[0].from || '<>'}.`
        : `${fresh.length} new messages.`);
    }
  }

  async function clearMessages() {
    try {
      await api('DELETE', 'api/v1/messages');
      await pollMessages();
      if (st.selected && st.selected.kind === 'message') clearDetail();
      actionStatus('Captured messages cleared.');
    } catch (e) {
      if (e.status !== 401) actionStatus(`Clearing messages failed: ${e.message}`, true);
    }
  }

  /* A small MIME reader for the text body: multipart, base64,
   * quoted-printable, charsets. Works on a "binary string" (one char per
   * byte) and decodes text with TextDecoder at the end. */

  function bytesToBinary(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return s;
  }

  function binaryToBytes(s) {
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
    return b;
  }

  function decodeBytes(bytes, charset) {
    try {
      return new TextDecoder(charset || 'utf-8').decode(bytes);
    } catch (e) {
      return new TextDecoder('utf-8').decode(bytes);
    }
  }

  function parseEntity(bin) {
    const m = /\r?\n\r?\n/.exec(bin);
    const head = m ? bin.slice(0, m.index) : bin;
    const body = m ? bin.slice(m.index + m[0].length) : '';
    const headers = [];
    for (const line of head.split(/\r?\n/)) {
      if (/^[ \t]/.test(line) && headers.length) {
        headers[headers.length - 1][1] += ` ${line.trim()}`;
      } else {
        const i = line.indexOf(':');
        if (i > 0) headers.push([line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()]);
      }
    }
    const get = (n) => {
      const f = headers.find((x) => x[0] === n);
      return f ? f[1] : '';
    };
    return {get, body};
  }

  // 'text/plain; charset="utf-8"' -> {value: 'text/plain', params: {charset: 'utf-8'}}
  function headerParams(v) {
    const parts = String(v || '').split(';');
    const out = {value: parts.shift().trim().toLowerCase(), params: {}};
    for (const p of parts) {
      const i = p.indexOf('=');
      if (i < 0) continue;
      let val = p.slice(i + 1).trim();
      if (val.startsWith('"') && val.endsWith('"') && val.length >= 2) val = val.slice(1, -1);
      out.params[p.slice(0, i).trim().toLowerCase()] = val;
    }
    return out;
  }

  function decodeTransfer(body, cte) {
    const enc = String(cte || '').trim().toLowerCase();
    if (enc === 'base64') {
      try {
        return binaryToBytes(atob(body.replace(/[^A-Za-z0-9+/=]/g, '')));
      } catch (e) {
        return binaryToBytes(body);
      }
    }
    if (enc === 'quoted-printable') {
      const s = body.replace(/=\r?\n/g, '')
        .replace(/=([0-9A-Fa-f]{2})/g, (_, x) => String.fromCharCode(parseInt(x, 16)));
      return binaryToBytes(s);
    }
    return binaryToBytes(body);
  }

  function splitMultipart(body, boundary) {
    const delim = `--${boundary}`;
    const parts = [];
    let cur = null;
    for (const line of body.split(/\r?\n/)) {
      if (line.startsWith(delim)) {
        const rest = line.slice(delim.length).trim();
        if (rest === '' || rest === '--') {
          if (cur) parts.push(cur.join('\r\n'));
          cur = rest === '--' ? null : [];
          if (rest === '--') break;
          continue;
        }
      }
      if (cur) cur.push(line);
    }
    if (cur) parts.push(cur.join('\r\n'));
    return parts;
  }

  function walkMime(bin, out, depth) {
    const e = parseEntity(bin);
    const ct = headerParams(e.get('content-type') || 'text/plain');
    if (ct.value.startsWith('multipart/') && ct.params.boundary && depth < 12) {
      for (const part of splitMultipart(e.body, ct.params.boundary)) walkMime(part, out, depth + 1);
      return;
    }
    const disp = headerParams(e.get('content-disposition'));
    const filename = disp.params.filename || ct.params.name || '';
    const bytes = decodeTransfer(e.body, e.get('content-transfer-encoding'));
    if (!filename && disp.value !== 'attachment' && ct.value === 'text/plain') {
      out.texts.push(decodeBytes(bytes, ct.params.charset));
    } else if (!filename && disp.value !== 'attachment' && ct.value === 'text/html') {
      out.htmls.push(decodeBytes(bytes, ct.params.charset));
    } else if (ct.value === 'message/rfc822' && depth < 12) {
      out.attachments.push({name: filename || '(forwarded message)', type: ct.value, size: bytes.length});
    } else {
      out.attachments.push({name: decodeWords(filename) || '(unnamed)', type: ct.value, size: bytes.length});
    }
  }

  // RFC 2047 encoded words, for showing headers.
  function decodeWords(v) {
    if (typeof v !== 'string' || !v.includes('=?')) return v;
    const re = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;
    return v.replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)/g, '$1')
      .replace(re, (all, charset, enc, text) => {
        try {
          const bin = enc.toLowerCase() === 'b' ? atob(text)
            : text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g,
              (_, x) => String.fromCharCode(parseInt(x, 16)));
          return decodeBytes(binaryToBytes(bin), charset.split('*')[0]);
        } catch (e) {
          return all;
        }
      });
  }

  async function openMessage(id, focus) {
    const seq = ++detailSeq;
    const row = msgRowCache.get(id);
    lastOpener = row ? row.button : document.activeElement;
    let m;
    let raw;
    try {
      [m, raw] = await Promise.all([
        api('GET', `api/v1/messages/${encodeURIComponent(id)}`),
        api('GET', `api/v1/messages/${encodeURIComponent(id)}/raw`, undefined, 'bytes'),
      ]);
    } catch (e) {
      if (seq !== detailSeq || e.status === 401) return;
      actionStatus(`Cannot show message ${id}: ${e.message}`, true);
      return;
    }
    if (seq !== detailSeq) return;
    revokeBlobs();
    st.selected = {kind: 'message', id};
    st.selectedSig = '';
    setText($('detail-heading'), `Message ${m.id}`);
    show($('detail-empty'), false);

    const mime = {texts: [], htmls: [], attachments: []};
    try {
      walkMime(bytesToBinary(raw), mime, 0);
    } catch (e) {
      mime.texts.push(`(the body could not be read: ${e.message})`);
    }
    let bodyView;
    if (mime.texts.length) {
      bodyView = h('pre', {class: 'body-text'}, mime.texts.join('\n\n———\n\n'));
    } else if (mime.htmls.length) {
      bodyView = [h('p', {class: 'hint'}, 'Only an HTML part: its source is shown as text.'),
        h('pre', {class: 'body-text'}, mime.htmls.join('\n\n———\n\n'))];
    } else {
      bodyView = h('p', {class: 'hint'}, 'No text part.');
    }
    const rawText = decodeBytes(raw.length > RAW_SHOWN ? raw.subarray(0, RAW_SHOWN) : raw, 'utf-8');
    const sessionBtn = h('button', {type: 'button', class: 'row-link'}, `#${m.session}`);
    sessionBtn.addEventListener('click', () => openSession(m.session, true));
    const headers = Array.isArray(m.headers) ? m.headers : [];
    fill($('detail-body'),
      h('div', {class: 'detail-actions'}, backButton(),
        blobLink(raw, 'message/rfc822', `${safeFileName(m.id)}.eml`, 'Download raw message (.eml)')),
      h('dl', {class: 'facts'},
        fact('Envelope from', h('span', {class: 'mono'}, m.from === '' ? '<>' : m.from)),
        fact('Envelope to', h('span', {class: 'mono'}, (m.to || []).join(', '))),
        fact('Subject', m.subject === null ? '(none)' : decodeWords(m.subject)),
        fact('Received', timeEl(m.time, true)),
        fact('Size', `${fmtBytes(m.size)} (${m.size} bytes)`),
        fact('Session', sessionBtn),
        fact('Client', h('span', {class: 'mono'}, m.client || '—')),
        fact('HELO/EHLO', m.helo || '—'),
        fact('TLS', m.tls ? 'yes' : 'no'),
        fact('AUTH user', m.auth_user || '—'),
        m.mail_params ? fact('MAIL parameters', h('span', {class: 'mono'}, m.mail_params)) : null),
      h('h3', null, 'Headers'),
      h('div', {class: 'table-wrap'}, h('table', {class: 'data headers'},
        h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Name'), h('th', {scope: 'col'}, 'Value'))),
        h('tbody', null, headers.map((x) => h('tr', null,
          h('th', {scope: 'row', class: 'mono'}, x.name),
          h('td', {class: 'mono'}, decodeWords(x.value))))))),
      h('h3', null, 'Text body'),
      bodyView,
      mime.attachments.length ? [h('h3', null, 'Attachments'), h('ul', {class: 'plain'},
        mime.attachments.map((a) => h('li', null, h('span', {class: 'mono'}, a.name),
          ` — ${a.type}, ${fmtBytes(a.size)}`)))] : null,
      h('details', {class: 'raw-box'},
        h('summary', null, 'Raw message'),
        raw.length > RAW_SHOWN ? h('p', {class: 'hint'}, `First ${fmtBytes(RAW_SHOWN)} shown; download the file for all of it.`) : null,
        h('pre', {class: 'raw', 'aria-label': 'Raw message'}, rawText)));
    $('detail').scrollTop = 0;
    setHash(`message-${m.id}`);
    renderSessions();
    renderMessages();
    focusDetail(focus);
  }

  /* ---------------------------------------------------------------- */
  /* The loop                                                          */

  function schedule() {
    window.clearTimeout(st.timer);
    st.timer = window.setTimeout(tick, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  async function tick() {
    if (st.running) return;
    if (st.tokenNeeded) return; // resumes when a token is given
    st.running = true;
    try {
      const n = st.tick;
      await pollSessions(n > 0 && n % RESYNC_EVERY === 0);
      const slow = [];
      if (n % 2 === 0) slow.push(pollMessages());
      if (n % 3 === 0) slow.push(pollClock(), pollScenario(), pollState());
      await Promise.all(slow);
      st.started = true;
      connStatus(`Connected · updated ${new Date().toLocaleTimeString()}`, 'ok');
    } catch (e) {
      if (e.status !== 401) connStatus(`API error: ${e.message}. Retrying…`, 'bad');
    } finally {
      st.running = false;
      st.tick++;
    }
    if (!st.tokenNeeded) schedule();
  }

  async function start() {
    window.clearTimeout(st.timer);
    st.tokenNeeded = false;
    document.body.classList.remove('token-needed');
    connStatus('Connecting…', '');
    try {
      await loadScenarios();
    } catch (e) {
      if (e.status === 401) return;
      connStatus(`API error: ${e.message}. Retrying…`, 'bad');
      st.timer = window.setTimeout(start, 2000);
      return;
    }
    st.tick = 0;
    await tick();
    // A link to a session or a message (#session-5, #message-ID).
    const m = /^#(session|message)-(.+)$/.exec(window.location.hash);
    if (m && !st.selected) {
      if (m[1] === 'session' && /^\d+$/.test(m[2])) openSession(Number(m[2]), false);
      else if (m[1] === 'message') openMessage(decodeURIComponent(m[2]), false);
    }
  }

  /* ---------------------------------------------------------------- */
  /* Wiring                                                            */

  function init() {
    $('scenario-form').addEventListener('submit', applyScenario);
    $('scenario-form').addEventListener('input', () => { st.formDirty = true; });
    $('scenario-select').addEventListener('change', (ev) => {
      const name = ev.target.value;
      renderScenarioForm(name, st.active && st.active.name === name ? st.active.params : {});
      st.formDirty = true;
    });
    $('btn-scenario-defaults').addEventListener('click', () => {
      for (const el of $('scenario-params-fields').querySelectorAll('[data-param]')) el.value = '';
      clearScenarioError();
      st.formDirty = true;
    });
    $('clock-form').addEventListener('submit', advanceClock);
    $('btn-reset-state').addEventListener('click', resetState);
    $('btn-clear-sessions').addEventListener('click', clearSessions);
    $('btn-clear-messages').addEventListener('click', clearMessages);
    for (const id of ['session-filter', 'message-filter']) {
      $(id).addEventListener('submit', (ev) => ev.preventDefault());
    }
    $('filter-outcome').addEventListener('change', renderSessions);
    $('filter-text').addEventListener('input', renderSessions);
    $('filter-messages').addEventListener('input', renderMessages);

    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('token-input').value.trim();
      setToken(v);
      $('token-input').value = '';
      updateTokenForm();
      actionStatus(v ? 'Token saved for this tab.' : 'Token removed.');
      if (v) $('token-box').open = false;
      start();
    });
    $('btn-token-forget').addEventListener('click', () => {
      setToken('');
      updateTokenForm();
      actionStatus('Token forgotten.');
      start();
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && !st.tokenNeeded && st.started) tick();
    });
    updateTokenForm();
    start();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
