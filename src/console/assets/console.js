// The console page: polls the gateway's JSON API (api/v1/...) and draws what it says. Everything a
// client or Ollama chose (model names, endpoints, reasons) goes into the page as text
// (textContent, attributes), never as markup. Charts are plain SVG.
'use strict';

(() => {
  const POLL_MS = 2000;
  const TOKEN_KEY = 'ollama-gateway-console-token';
  const THEME_KEY = 'ollama-gateway-console-theme';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PHASES = [
    ['queue', 'Queue'],
    ['load', 'Load'],
    ['prompt', 'Prompt evaluation'],
    ['generation', 'Generation'],
    ['other', 'Other (Ollama)'],
  ];

  const $ = (id) => document.getElementById(id);
  const state = {
    model: '',
    minutes: 15,
    expanded: new Set(),
    timer: undefined,
    busy: false,
    lastModels: [],
    polls: 0,
    usageDays: 7,
    tenant: '',
    tenantPolls: 0,
    tenantsShown: false,
    usersOpen: new Set(),
  };

  // ---- elements ----------------------------------------------------------------------------

  /** An element with a class and text (never markup). */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function cell(text, cls) {
    return el('td', cls, text);
  }

  // ---- formatting ----------------------------------------------------------------------------

  const int = (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));

  function num(n, unit) {
    if (n === null || n === undefined || !Number.isFinite(n)) return '–';
    const a = Math.abs(n);
    const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a === 0 ? 0 : 3;
    return n.toFixed(digits) + (unit ? ' ' + unit : '');
  }

  function seconds(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return '–';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.round(s % 60)).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  }

  const ms = (v) => (v === null || v === undefined ? '–' : seconds(v / 1000));

  function bytes(b) {
    if (b === null || b === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = b;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return v.toFixed(v >= 100 || i === 0 ? 0 : 1) + ' ' + units[i];
  }

  const pad = (n) => String(n).padStart(2, '0');
  function clock(epochMs) {
    const d = new Date(epochMs);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // ---- the API -------------------------------------------------------------------------------

  class Unauthorized extends Error {}

  async function get(path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = token ? { authorization: 'Bearer ' + token } : {};
    const res = await fetch('api/v1/' + path, { headers, cache: 'no-store' });
    if (res.status === 401) throw new Unauthorized();
    if (!res.ok) throw new Error(path + ' answered ' + res.status);
    return res.json();
  }

  // ---- charts --------------------------------------------------------------------------------

  const W = 600;
  const H = 110;

  /**
   * A line chart: `lines` of { name, values (null: no data), cls }, one point per bucket from
   * `start` (epoch ms) every `stepS` seconds.
   */
  function chart(id, title, format, view, lines) {
    const box = el('div', 'card chart');
    box.dataset.chart = id;
    const head = el('div', 'chart-head');
    head.append(el('span', 'chart-title', title));
    const read = el('span', 'chart-read');
    head.append(read);
    box.append(head);

    const n = view.points;
    let max = 0;
    for (const l of lines) for (const v of l.values) if (v !== null && v > max) max = v;
    const top = max > 0 ? max * 1.1 : 1;
    const x = (i) => (n <= 1 ? W : (i / (n - 1)) * W);
    const y = (v) => H - (v / top) * H;

    const plot = el('div', 'chart-plot');
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
    for (const f of [0, 0.5, 1]) s.append(svg('line', { class: 'grid-line', x1: 0, x2: W, y1: H * f, y2: H * f, 'vector-effect': 'non-scaling-stroke' }));
    lines.forEach((l) => {
      let d = '';
      let pen = false;
      let nonzero = 0;
      let drawn = 0;
      l.values.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
        pen = true;
        drawn++;
        if (v > 0) nonzero++;
      });
      const path = svg('path', { class: 'line ' + l.cls, d, 'vector-effect': 'non-scaling-stroke' });
      path.dataset.series = l.name;
      path.dataset.points = String(drawn);
      path.dataset.nonzero = String(nonzero);
      s.append(path);
    });
    const cursor = svg('line', { class: 'cursor', x1: 0, x2: 0, y1: 0, y2: H, visibility: 'hidden', 'vector-effect': 'non-scaling-stroke' });
    s.append(cursor);
    plot.append(s);
    plot.append(el('span', 'chart-max', max > 0 ? format(max) : ''));
    box.append(plot);

    const axis = el('div', 'chart-axis');
    axis.append(el('span', null, clock(view.start)));
    axis.append(el('span', null, 'now'));
    box.append(axis);

    if (lines.length > 1) {
      const legend = el('div', 'legend');
      for (const l of lines) {
        const item = el('span');
        item.append(el('span', 'swatch ' + l.cls));
        item.append(document.createTextNode(l.name));
        legend.append(item);
      }
      box.append(legend);
    }

    const latest = () => {
      const parts = lines.map((l) => {
        for (let i = l.values.length - 1; i >= 0; i--) if (l.values[i] !== null) return format(l.values[i]);
        return '–';
      });
      return parts.join(' · ');
    };
    read.textContent = latest();
    s.addEventListener('mousemove', (ev) => {
      const r = s.getBoundingClientRect();
      const i = Math.max(0, Math.min(n - 1, Math.round(((ev.clientX - r.left) / r.width) * (n - 1))));
      cursor.setAttribute('x1', String(x(i)));
      cursor.setAttribute('x2', String(x(i)));
      cursor.setAttribute('visibility', 'visible');
      const at = clock(view.start + i * view.bucketSeconds * 1000);
      read.textContent = at + '  ' + lines.map((l) => (l.values[i] === null ? '–' : format(l.values[i]))).join(' · ');
    });
    s.addEventListener('mouseleave', () => {
      cursor.setAttribute('visibility', 'hidden');
      read.textContent = latest();
    });
    return box;
  }

  function renderCharts(view) {
    const rate = (v) => num(v, '/s');
    const errorLines = Object.entries(view.errorsPerSecond).map(([reason, values], i) => ({ name: reason, values, cls: 's' + ((i + 3) % 6) }));
    const charts = [
      chart('requests', 'Requests per second', rate, view, [{ name: 'requests', values: view.requestsPerSecond, cls: 's0' }]),
      chart(
        'errors',
        'Errors per second, by reason',
        rate,
        view,
        errorLines.length ? errorLines : [{ name: 'errors', values: view.requestsPerSecond.map(() => 0), cls: 's3' }],
      ),
      chart('tokens', 'Tokens per second', rate, view, [
        { name: 'in (prompt)', values: view.inputTokensPerSecond, cls: 's1' },
        { name: 'out (generated)', values: view.outputTokensPerSecond, cls: 's0' },
      ]),
      chart('ttft', 'Time to first token', seconds, view, [
        { name: 'p50', values: view.ttftP50Seconds, cls: 's0' },
        { name: 'p95', values: view.ttftP95Seconds, cls: 's2' },
      ]),
      chart('speed', 'Generation speed, p50', (v) => num(v, 'tok/s'), view, [{ name: 'p50', values: view.tokensPerSecondP50, cls: 's4' }]),
      chart('queue', 'Queue time, mean', seconds, view, [{ name: 'queue', values: view.queueMeanSeconds, cls: 's5' }]),
      chart('cold', 'Cold loads', (v) => int(v), view, [{ name: 'cold loads', values: view.coldLoads, cls: 's2' }]),
    ];
    $('charts').replaceChildren(...charts);
  }

  // ---- phase bars ----------------------------------------------------------------------------

  /** A bar of `parts` ([key, value]) summing to `total`, with a legend giving each value. */
  function phaseBar(parts, total, format) {
    const wrap = el('div', 'phase-bar');
    const s = svg('svg', { viewBox: '0 0 1000 22', preserveAspectRatio: 'none', role: 'img', 'aria-label': 'phases' });
    let at = 0;
    const legend = el('div', 'legend');
    for (const [key, label] of PHASES) {
      const v = parts[key] || 0;
      if (v <= 0) continue;
      const w = total > 0 ? (v / total) * 1000 : 0;
      const r = svg('rect', { class: 'ph-' + key, x: at.toFixed(2), y: 0, width: Math.max(w, 1.5).toFixed(2), height: 22 });
      r.dataset.phase = key;
      const t = svg('title');
      t.textContent = label + ': ' + format(v);
      r.append(t);
      s.append(r);
      at += w;
      const item = el('span');
      item.append(el('span', 'swatch ph-' + key));
      item.append(document.createTextNode(label + ' ' + format(v) + (total > 0 ? ' (' + Math.round((v / total) * 100) + '%)' : '')));
      legend.append(item);
    }
    wrap.append(s, legend);
    return wrap;
  }

  function renderSplit(summary, modelName) {
    $('split-label').textContent = (modelName || 'all models') + ' · last ' + windowText();
    const p = summary ? summary.window.phases : null;
    const box = $('split-bar');
    if (!p || p.calls === 0) {
      box.replaceChildren(el('p', 'phase-note', 'No call in the window reported its phases (Ollama reports them on native and most compatible answers).'));
      return;
    }
    const total = p.queue + p.load + p.prompt + p.generation + p.other;
    box.replaceChildren(
      phaseBar(p, total, seconds),
      el(
        'p',
        'phase-note',
        p.calls + ' call' + (p.calls === 1 ? '' : 's') + ', ' + seconds(total) + ' of wall time in all. Queue: waiting in Ollama or on the network.',
      ),
    );
  }

  // ---- panels --------------------------------------------------------------------------------

  const windowText = () => (state.minutes >= 60 ? 'hour' : state.minutes + ' minutes');

  function renderNow(now) {
    $('gateway-version').textContent = 'v' + now.gateway.version;
    $('in-flight').textContent = int(now.inFlight);
    const backends = now.backends.map((b) => {
      const box = el('div', 'backend');
      const line = el('div');
      const up = b.up === null ? 'unknown' : b.up ? 'up' : 'down';
      line.append(el('span', 'pill ' + up, b.up === null ? (b.polled ? 'waiting' : 'not polled') : b.up ? 'up' : 'down'));
      line.append(document.createTextNode(' Ollama ' + (b.ollamaVersion ? b.ollamaVersion : '')));
      box.append(line, el('div', 'origin', b.origin));
      if (b.available) box.append(el('div', 'muted', b.available.count + ' models on disk · ' + bytes(b.available.bytes)));
      box.dataset.up = up;
      return box;
    });
    $('backends').replaceChildren(el('div', 'label', 'Ollama'), ...backends);
    const workers = now.gateway.workers || 1;
    $('workers-note').hidden = workers < 2;
    $('workers-note').textContent =
      workers < 2
        ? ''
        : workers +
          " worker processes: the history is that of every worker together. A worker that exits is replaced; what it had recorded up to the console's last look stays, as its counts up to the last scrape stay in /metrics; calls it finished after that are lost.";

    // With several backends the same model can be loaded on more than one: say where each is.
    const several = now.backends.length > 1;
    $('loaded-backend').hidden = !several;
    const rows = [];
    for (const b of now.backends) {
      for (const m of b.loaded) {
        const tr = el('tr');
        tr.dataset.model = m.model;
        tr.append(cell(m.model, 'model'));
        if (several) tr.append(cell(b.name, 'backend'));
        tr.append(cell(bytes(m.bytes), 'num'));
        const gpu = el('td');
        const meter = svg('svg', { class: 'meter', viewBox: '0 0 100 8', preserveAspectRatio: 'none' });
        meter.append(svg('rect', { x: 0, y: 0, height: 8, width: Math.round((m.vramRatio || 0) * 100) }));
        gpu.append(meter, document.createTextNode(m.vramRatio === null ? '–' : Math.round(m.vramRatio * 100) + '% · ' + bytes(m.vramBytes)));
        tr.append(gpu);
        tr.append(cell(m.contextLength === null ? '–' : int(m.contextLength), 'num'));
        tr.append(cell(m.unloadInSeconds === null ? '–' : seconds(m.unloadInSeconds), 'num'));
        tr.append(cell(int(m.inFlight), 'num'));
        rows.push(tr);
      }
    }
    $('loaded').tBodies[0].replaceChildren(...rows);
    const polled = now.backends.some((b) => b.polled);
    $('loaded-empty').textContent = rows.length ? '' : polled ? 'No model is loaded.' : 'Ollama is not polled (OLLAMA_POLL_INTERVAL_SECONDS=0).';
  }

  function renderModels(data) {
    $('window-label').textContent = 'last ' + windowText() + ' · requests and errors also since start';
    const rows = data.models.map((m) => {
      const w = m.window;
      const tr = el('tr', 'row' + (m.model === state.model ? ' selected' : ''));
      tr.dataset.model = m.model;
      const name = cell(m.model, 'model');
      if (m.totals.remoteRequests > 0) {
        name.append(' ', el('span', 'remote', 'remote'));
        name.title = 'Runs on another host (a cloud or remote model): not in the GPU figures.';
      }
      tr.append(name);
      tr.append(cell(int(m.inFlight), 'num in-flight'));
      tr.append(cell(int(m.totals.requests), 'num requests'));
      tr.append(cell(int(w.requests), 'num window-requests'));
      const errors = cell(w.errors ? int(w.errors) + ' (' + Math.round((w.errorRatio || 0) * 100) + '%)' : '0', 'num errors' + (w.errors ? ' bad' : ''));
      errors.title = Object.entries(w.errorsByReason)
        .map(([r, n]) => r + ': ' + n)
        .join(', ');
      tr.append(errors);
      tr.append(cell(num(w.inputTokensPerSecond), 'num'));
      tr.append(cell(w.cacheHitRatio === null ? '–' : Math.round(w.cacheHitRatio * 100) + '%', 'num cache-hit'));
      tr.append(cell(num(w.prefillTokensPerSecond), 'num'));
      tr.append(cell(num(w.outputTokensPerSecond), 'num'));
      tr.append(cell(seconds(w.ttftP50Seconds), 'num'));
      tr.append(cell(seconds(w.ttftP95Seconds), 'num'));
      tr.append(cell(num(w.tokensPerSecondP50), 'num'));
      tr.append(cell(seconds(w.queueMeanSeconds), 'num'));
      tr.append(cell(int(w.coldLoads), 'num'));
      tr.addEventListener('click', () => selectModel(m.model === state.model ? '' : m.model));
      return tr;
    });
    $('model-table').tBodies[0].replaceChildren(...rows);
    $('models-empty').hidden = rows.length > 0;

    const select = $('model-select');
    const names = data.models.map((m) => m.model).sort();
    const current = [...select.options].slice(1).map((o) => o.value);
    if (names.join('\u0000') !== current.join('\u0000')) {
      const options = names.map((name) => {
        const o = el('option', null, name);
        o.value = name;
        return o;
      });
      const all = el('option', null, 'All models');
      all.value = '';
      select.replaceChildren(all, ...options);
    }
    select.value = state.model;
    state.lastModels = data.models;
    renderCharts(data.series);
    renderSplit(state.model ? data.models.find((m) => m.model === state.model) : data.all, state.model);
  }

  const callKey = (c) => c.at + '|' + c.durationMs + '|' + c.model + '|' + c.endpoint;

  function callDetail(c) {
    const td = el('td');
    td.colSpan = 12;
    if (c.phases) {
      const p = { queue: c.phases.queueMs, load: c.phases.loadMs, prompt: c.phases.promptMs, generation: c.phases.generationMs, other: c.phases.otherMs };
      td.append(phaseBar(p, Math.max(c.durationMs, p.queue + p.load + p.prompt + p.generation + p.other), ms));
    } else {
      td.append(phaseBar({ other: c.durationMs }, c.durationMs, ms));
      td.append(el('p', 'phase-note', 'Ollama reported no phase times for this call; the bar is its whole duration.'));
    }
    const facts = [c.operation, c.streamed ? 'streamed' : 'not streamed'];
    if (c.reason) facts.push('failed: ' + c.reason);
    if (c.ttftMs !== undefined) facts.push('first token after ' + ms(c.ttftMs));
    if (c.remote) facts.push('ran on a remote host' + (c.remoteHost ? ' (' + c.remoteHost + ')' : ''));
    if (c.traceId) facts.push('trace ' + c.traceId);
    td.append(el('p', 'phase-note', facts.join(' · ')));
    const tr = el('tr', 'detail');
    tr.append(td);
    return tr;
  }

  function renderCalls(data) {
    const rows = [];
    for (const c of data.calls) {
      const key = callKey(c);
      const tr = el('tr', 'row' + (state.expanded.has(key) ? ' selected' : ''));
      tr.dataset.model = c.model;
      tr.append(cell(clock(c.at), 'mono'));
      tr.append(cell(c.endpoint, 'mono'));
      const model = cell(c.model, 'model');
      if (c.remote) model.append(' ', el('span', 'remote', 'remote'));
      tr.append(model);
      tr.append(cell(c.tenant === undefined ? '–' : c.tenant + (c.user ? ' · ' + c.user : ''), 'mono'));
      const status = cell(c.status + (c.reason ? ' ' + c.reason : ''), c.reason ? 'bad' : 'ok');
      tr.append(status);
      tr.append(cell(ms(c.durationMs), 'num'));
      tr.append(cell(c.ttftMs === undefined ? '–' : ms(c.ttftMs), 'num'));
      tr.append(cell(c.inputTokens === undefined ? '–' : int(c.inputTokens), 'num'));
      tr.append(cell(c.cachedTokens === undefined ? '–' : int(c.cachedTokens), 'num'));
      tr.append(cell(c.outputTokens === undefined ? '–' : int(c.outputTokens), 'num'));
      tr.append(cell(c.tokensPerSecond === undefined ? '–' : num(c.tokensPerSecond), 'num'));
      const trace = cell(c.traceId && !c.traceUrl ? c.traceId.slice(0, 12) + '…' : c.traceId ? '' : '–', 'mono');
      if (c.traceId) trace.title = c.traceId;
      if (c.traceUrl) {
        // TRACE_UI_URL is set: the trace id opens the trace viewer.
        const a = el('a', 'trace-link', c.traceId.slice(0, 12) + '…');
        a.href = c.traceUrl;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        a.addEventListener('click', (e) => e.stopPropagation());
        trace.append(a);
      }
      tr.append(trace);
      tr.addEventListener('click', () => {
        if (state.expanded.has(key)) state.expanded.delete(key);
        else state.expanded.add(key);
        renderCalls(data);
      });
      rows.push(tr);
      if (state.expanded.has(key)) rows.push(callDetail(c));
    }
    $('calls').tBodies[0].replaceChildren(...rows);
    $('calls-empty').hidden = rows.length > 0;
  }

  // ---- usage (the ledger) --------------------------------------------------------------------

  /** How often the ledger is asked, in polls (it changes slowly, and is read from disk). */
  const USAGE_EVERY = 5;

  /** Sums rows of the usage API into groups by `key(row)`, with each group's models. */
  function groupUsage(rows, key) {
    const out = new Map();
    for (const r of rows) {
      const k = key(r);
      let g = out.get(k);
      if (!g) {
        g = { name: k, requests: 0, input: 0, cached: 0, output: 0, gpu: 0, models: new Map() };
        out.set(k, g);
      }
      g.requests += r.requests;
      g.input += r.input_tokens;
      g.cached += r.cached_tokens;
      g.output += r.output_tokens;
      g.gpu += r.gpu_seconds;
      g.models.set(r.model, (g.models.get(r.model) || 0) + r.requests);
    }
    return [...out.values()].sort((a, b) => b.gpu - a.gpu || b.requests - a.requests || (a.name < b.name ? -1 : 1));
  }

  function topModels(g) {
    return [...g.models.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([m, n]) => m + ' (' + int(n) + ')')
      .join(', ');
  }

  function usageRow(g, total, dataKey) {
    const tr = el('tr', 'row');
    tr.dataset[dataKey] = g.name;
    tr.append(cell(g.name === '' ? '(no user)' : g.name, 'model'));
    tr.append(cell(int(g.requests), 'num'));
    tr.append(cell(int(g.input), 'num'));
    tr.append(cell(int(g.cached), 'num'));
    tr.append(cell(int(g.output), 'num'));
    tr.append(cell(seconds(g.gpu), 'num'));
    tr.append(cell(total > 0 ? num((100 * g.gpu) / total) + ' %' : '–', 'num'));
    tr.append(cell(topModels(g), 'mono'));
    return tr;
  }

  function renderUsage(data) {
    const rows = data.rows;
    const tenants = groupUsage(rows, (r) => r.tenant);
    const total = tenants.reduce((n, g) => n + g.gpu, 0);
    const trs = tenants.map((g) => {
      const tr = usageRow(g, total, 'tenant');
      if (g.name === state.tenant) tr.classList.add('selected');
      tr.addEventListener('click', () => {
        state.tenant = state.tenant === g.name ? '' : g.name;
        renderUsage(data);
      });
      return tr;
    });
    $('usage-tenants').tBodies[0].replaceChildren(...trs);
    $('usage-empty').hidden = trs.length > 0;
    const chosen = tenants.find((g) => g.name === state.tenant);
    $('usage-users-card').hidden = !chosen;
    if (chosen) {
      $('usage-users-title').textContent = 'Users of ' + chosen.name;
      const users = groupUsage(
        rows.filter((r) => r.tenant === chosen.name),
        (r) => r.user || '',
      );
      $('usage-users').tBodies[0].replaceChildren(...users.map((g) => usageRow(g, chosen.gpu, 'user')));
    }
  }

  async function pollUsage() {
    try {
      const data = await get('usage?from=' + state.usageDays + 'd&by=tenant,user,model');
      $('usage').hidden = false;
      renderUsage(data);
    } catch (err) {
      if (err instanceof Unauthorized) throw err;
      // No ledger (LEDGER_URL=off): no Usage view.
      $('usage').hidden = true;
    }
  }

  // ---- tenants: budgets and the fair queue ------------------------------------------------------

  /** From this share of a limit on, its bar is marked (the share the example alert fires at). */
  const WARN_RATIO = 0.8;

  const amount = (measure, v) => (measure === 'gpu_seconds' ? seconds(v) : int(v));

  function limitWindow(l) {
    if (l.window === 'day') return 'per day';
    if (l.window === 'month') return 'per month';
    const w = l.windowSeconds;
    if (w % 3600 === 0) return 'per ' + (w === 3600 ? '' : w / 3600 + ' ') + 'hour' + (w === 3600 ? '' : 's');
    if (w % 60 === 0) return 'per ' + (w === 60 ? '' : w / 60 + ' ') + 'minute' + (w === 60 ? '' : 's');
    return 'per ' + w + ' s';
  }

  const limitState = (l) => (l.reached ? 'over' : l.usedRatio >= WARN_RATIO ? 'warn' : 'ok');

  /** A bar of `used` of `limit`, with a tick at 80%. */
  function limitMeter(l, cls) {
    const m = svg('svg', {
      class: cls,
      viewBox: '0 0 100 8',
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': Math.round(l.usedRatio * 100) + '% used',
    });
    m.append(svg('rect', { class: 'fill', x: 0, y: 0, height: 8, width: Math.min(100, Math.max(0, l.usedRatio * 100)) }));
    m.append(svg('line', { class: 'mark', x1: WARN_RATIO * 100, x2: WARN_RATIO * 100, y1: 0, y2: 8, 'vector-effect': 'non-scaling-stroke' }));
    return m;
  }

  function statePill(st) {
    if (st === 'over') return el('span', 'pill over', 'limit reached');
    if (st === 'warn') return el('span', 'pill warn', '80%+');
    return null;
  }

  function budgetRow(l) {
    const st = limitState(l);
    const row = el('div', 'budget');
    row.dataset.limit = l.name;
    row.dataset.state = st;
    const head = el('div', 'budget-head');
    const name = el('span', 'budget-name', l.name);
    const pill = statePill(st);
    if (pill) name.append(' ', pill);
    head.append(
      name,
      el('span', 'budget-figures', amount(l.measure, l.used) + ' of ' + amount(l.measure, l.limit) + ' · ' + Math.round(l.usedRatio * 100) + '%'),
    );
    const foot = el('div', 'budget-foot', limitWindow(l) + (l.used > 0 || l.window !== 'rolling' ? ' · resets in ' + seconds(l.resetInSeconds) : ''));
    foot.title = 'resets at ' + new Date(l.resetAt).toLocaleString();
    row.append(head, limitMeter(l, 'budget-bar'), foot);
    return row;
  }

  function queueLine(q) {
    const box = el('div', 'queue-line');
    const stat = (cls, before, value, after) => {
      const s = el('span', 'queue-stat ' + cls);
      if (before) s.append(el('span', 'muted', before + ' '));
      s.append(el('span', 'queue-value', value));
      if (after) s.append(el('span', 'muted', ' ' + after));
      return s;
    };
    box.append(stat('queue-waiting', '', int(q.waiting), 'waiting'), stat('queue-running', '', int(q.running), 'running'));
    if (q.waiting > 0) box.append(stat('queue-longest', 'waiting for', seconds(q.longestWaitSeconds), ''));
    const last = q.lastWait;
    box.append(stat('queue-last', 'last wait', last ? seconds(last.seconds) : '–', last ? '(' + seconds(last.secondsAgo) + ' ago)' : ''));
    return box;
  }

  function usersBlock(t) {
    const u = t.users;
    const box = el('details', 'tenant-users');
    box.open = state.usersOpen.has(t.tenant);
    box.addEventListener('toggle', () => {
      if (box.open) state.usersOpen.add(t.tenant);
      else state.usersOpen.delete(t.tenant);
    });
    const each = u.limits.map((l) => l.name + ' ' + amount(l.measure, l.limit)).join(', ');
    box.append(
      el('summary', null, 'End users: ' + int(u.seen) + ' seen' + (u.shown.length < u.seen ? ', ' + u.shown.length + ' latest shown' : '') + ' · each ' + each),
    );
    if (u.shown.length === 0) return box;
    const table = el('table', 'grid users');
    const head = el('tr');
    head.append(el('th', null, 'User'), ...u.limits.map((l) => el('th', null, l.name)));
    table.append(el('thead'), el('tbody'));
    table.tHead.append(head);
    for (const user of u.shown) {
      const tr = el('tr');
      tr.dataset.user = user.user;
      const name = cell(user.user, 'model');
      name.title = user.user;
      tr.append(name);
      for (const rule of u.limits) {
        const l = user.limits.find((x) => x.name === rule.name);
        const td = el('td', 'user-limit');
        if (l) {
          td.dataset.state = limitState(l);
          td.title = limitWindow(l) + ' · resets in ' + seconds(l.resetInSeconds);
          td.append(
            limitMeter(l, 'meter'),
            document.createTextNode(amount(l.measure, l.used) + ' / ' + amount(l.measure, l.limit) + ' · ' + Math.round(l.usedRatio * 100) + '%'),
          );
        } else td.textContent = '–';
        tr.append(td);
      }
      table.tBodies[0].append(tr);
    }
    box.append(table);
    return box;
  }

  function renderTenants(data) {
    const cards = data.tenants.map((t) => {
      const card = el('div', 'card tenant');
      card.dataset.tenant = t.tenant;
      const worst = t.limits.some((l) => l.reached) ? 'over' : t.limits.some((l) => l.usedRatio >= WARN_RATIO) ? 'warn' : 'ok';
      card.dataset.state = worst;
      const head = el('div', 'tenant-head');
      head.append(el('span', 'tenant-name', t.tenant));
      const policy = el('span', 'muted', t.priority + (t.weight !== 1 ? ' · weight ' + num(t.weight) : ''));
      head.append(policy);
      card.append(head);
      if (t.queue) card.append(queueLine(t.queue));
      for (const l of t.limits) card.append(budgetRow(l));
      if (t.users) card.append(usersBlock(t));
      if (t.limits.length === 0 && !t.users) card.append(el('div', 'budget-foot', 'no limits'));
      return card;
    });
    $('tenant-cards').replaceChildren(...cards);
  }

  /** Asks for the budgets every poll while the panel shows, every fifth while there is nothing to show. */
  async function pollTenants() {
    if (state.tenantPolls++ % (state.tenantsShown ? 1 : USAGE_EVERY) !== 0) return;
    try {
      const data = await get('budgets');
      state.tenantsShown = data.tenants.length > 0;
      if (state.tenantsShown) renderTenants(data);
    } catch (err) {
      if (err instanceof Unauthorized) throw err;
      state.tenantsShown = false;
    }
    $('tenants').hidden = !state.tenantsShown;
  }

  // ---- the loop ------------------------------------------------------------------------------

  function setStatus(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = 'status ' + (cls || '');
  }

  function showLogin(message) {
    $('content').hidden = true;
    $('login').hidden = false;
    $('signout').hidden = true;
    const e = $('login-error');
    e.textContent = message || '';
    e.hidden = !message;
    setStatus('sign-in needed');
  }

  async function poll() {
    if (state.busy) return;
    state.busy = true;
    clearTimeout(state.timer);
    try {
      const model = state.model ? '&model=' + encodeURIComponent(state.model) : '';
      const [now, models, calls] = await Promise.all([get('now'), get('models?minutes=' + state.minutes + model), get('calls?limit=200')]);
      $('login').hidden = true;
      $('content').hidden = false;
      $('signout').hidden = !sessionStorage.getItem(TOKEN_KEY);
      renderNow(now);
      renderModels(models);
      renderCalls(calls);
      await pollTenants();
      if (!now.gateway.usage) $('usage').hidden = true;
      else if (state.polls++ % USAGE_EVERY === 0) await pollUsage();
      setStatus('live · ' + clock(now.time), 'live');
    } catch (err) {
      if (err instanceof Unauthorized) {
        const had = sessionStorage.getItem(TOKEN_KEY);
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(had ? 'That token was refused.' : '');
        state.busy = false;
        return;
      }
      setStatus('cannot reach the gateway, retrying', 'down');
    }
    state.busy = false;
    if (!document.hidden) state.timer = setTimeout(poll, POLL_MS);
  }

  function selectModel(name) {
    state.model = name;
    poll();
  }

  // ---- theme ---------------------------------------------------------------------------------

  function effectiveTheme() {
    const set = document.documentElement.dataset.theme;
    if (set) return set;
    return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  }

  function applyTheme(theme) {
    if (theme) document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
    $('theme').textContent = effectiveTheme() === 'dark' ? 'Light' : 'Dark';
  }

  // ---- start ---------------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    applyTheme(localStorage.getItem(THEME_KEY) || undefined);
    $('theme').addEventListener('click', () => {
      const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
      localStorage.setItem(THEME_KEY, next);
      applyTheme(next);
    });
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme(localStorage.getItem(THEME_KEY) || undefined));
    $('window').value = String(state.minutes);
    $('window').addEventListener('change', (e) => {
      state.minutes = Number(e.target.value);
      poll();
    });
    $('model-select').addEventListener('change', (e) => selectModel(e.target.value));
    $('usage-days').addEventListener('change', (e) => {
      state.usageDays = Number(e.target.value);
      state.polls = 0;
      poll();
    });
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const token = $('token').value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $('token').value = '';
      // Another token may see other tenants: the Usage view and the budgets are asked again at once.
      state.polls = 0;
      state.tenant = '';
      state.tenantPolls = 0;
      poll();
    });
    $('signout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('');
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) poll();
    });
    poll();
  });
})();
