// app.js - the beamlet dashboard: topology, services grid, metrics graphs, alerts, tasks, the
// cluster configuration, events.
// Preact + htm (vendor/htm-preact-standalone.module.js) and uPlot (vendor/uPlot.iife.min.js),
// served from the node's binary. State comes from the REST API (/api/v1) and stays live through
// the event stream (/api/v1/stream, read with fetch so the API key can go in a header); a member
// that fails is redrawn from the event itself, without a reload. The API key, when one is needed,
// is kept for this tab only (sessionStorage).
import { html, render, useState, useEffect, useRef } from '/assets/htm-preact.js';

const KEY = 'beamlet_api_key';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
window.__beamletLoadedAt = Date.now(); // a reload would reset this (the browser test checks it)

function headers(extra) {
  const h = Object.assign({ Accept: 'application/json' }, extra || {});
  const k = sessionStorage.getItem(KEY);
  if (k) h.Authorization = 'Bearer ' + k;
  return h;
}

async function api(path, opts) {
  const o = Object.assign({}, opts || {});
  o.headers = headers(o.headers);
  const res = await fetch(path, o);
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  if (!res.ok) {
    const err = new Error((body && body.detail) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

// Server-Sent Events over fetch, resuming with Last-Event-ID after a drop.
async function stream(onEvent, setLive) {
  let last = null;
  for (;;) {
    try {
      const h = headers({ Accept: 'text/event-stream' });
      if (last) h['Last-Event-ID'] = last;
      const res = await fetch('/api/v1/stream', { headers: h });
      if (!res.ok) throw new Error('stream ' + res.status);
      setLive(true);
      const rd = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let id = null, type = 'message', data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (id) last = id;
          if (data) { try { onEvent(type, JSON.parse(data)); } catch (e) { /* a bad event is skipped */ } }
        }
      }
    } catch (e) { /* reconnect below */ }
    setLive(false);
    await sleep(1000);
  }
}

const Badge = ({ s, word }) => html`<span class=${'badge s-' + s}>${word || s}</span>`;

// links: from /api/v1/topology (each member's own connections); null on a gateway without that
// route, where every pair of live members is drawn (the distribution default: a full mesh)
function Topology({ nodes, links }) {
  const n = nodes.length || 1, W = 560, H = 420, cx = W / 2, cy = H / 2, R = n > 1 ? 150 : 0;
  const pos = nodes.map((m, i) => {
    const a = (2 * Math.PI * i) / n - Math.PI / 2;
    return { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) };
  });
  const up = (m) => m.state === 'active' || m.state === 'joining' || m.state === 'suspected';
  const at = {};
  nodes.forEach((m, i) => { at[m.node] = i; });
  const pairs = [];
  if (links) {
    for (const l of links) {
      const i = at[l.source], j = at[l.target];
      if (i === undefined || j === undefined) continue;
      // two beamlet ends that do not both see the link: half open
      const half = nodes[i].kind !== 'beam' && nodes[j].kind !== 'beam' && l.seen_by.length < 2;
      pairs.push([i, j, half]);
    }
  } else {
    for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) pairs.push([i, j, false]);
  }
  const lines = pairs.filter(([i, j]) => up(nodes[i]) && up(nodes[j])).map(([i, j, half]) =>
    html`<line data-link=${nodes[i].node + '|' + nodes[j].node} x1=${pos[i].x} y1=${pos[i].y} x2=${pos[j].x} y2=${pos[j].y}
      stroke="#8c959f" stroke-width="1.5" stroke-dasharray=${half ? '6 4' : null}><title>${nodes[i].node} - ${nodes[j].node}${half ? ' (seen from one end only)' : ''}</title></line>`);
  const colour = { active: '#1a7f37', joining: '#9a6700', suspected: '#9a6700', leaving: '#9a6700', failed: '#cf222e', left: '#6e7781' };
  return html`<div class="topo">
    <svg viewBox=${'0 0 ' + W + ' ' + H} role="img" aria-label="cluster topology">
      ${lines}
      ${nodes.map((m, i) => html`<g data-node=${m.node} data-state=${m.state}>
        ${m.kind === 'beam'
          ? html`<rect x=${pos[i].x - 18} y=${pos[i].y - 18} width="36" height="36" rx="4" fill=${colour[m.state] || '#6e7781'} />`
          : html`<circle cx=${pos[i].x} cy=${pos[i].y} r="20" fill=${colour[m.state] || '#6e7781'} stroke=${m.leader ? '#0969da' : 'none'} stroke-width="4" />`}
        <text x=${pos[i].x} y=${pos[i].y + 36} text-anchor="middle">${m.node}</text>
        <text x=${pos[i].x} y=${pos[i].y + 51} text-anchor="middle">${m.role} · ${m.state.toUpperCase()}${m.leader ? ' · leader' : ''}</text>
      </g>`)}
    </svg>
    <div class="cards">
      ${nodes.map((m) => html`<div class=${'card s-' + m.state} data-card=${m.node}>
        <h3>${m.node}</h3>
        <${Badge} s=${m.state} /> ${' '}<span>${m.role}</span>${m.kind === 'beam' ? ' (BEAM)' : ''}${m.leader ? html` <strong>leader</strong>` : ''}
        <div class="note">${(m.capabilities || []).join(', ')}${m.last_seen_ms != null && m.last_seen_ms > 0 ? ' · seen ' + Math.round(m.last_seen_ms) + ' ms ago' : ''}</div>
      </div>`)}
    </div>
  </div>`;
}

function Services({ services, nodes }) {
  const names = [...new Set(services.map((s) => s.name))].sort();
  const cols = nodes.filter((m) => m.kind !== 'beam').map((m) => m.node);
  if (!names.length) return html`<p class="note">No service registered. Register one with POST /api/v1/services or bl_registry_register.</p>`;
  return html`<div class="scroll"><table>
    <thead><tr><th>service</th>${cols.map((c) => html`<th>${c}</th>`)}</tr></thead>
    <tbody>${names.map((nm) => html`<tr data-service=${nm}><th>${nm}</th>${cols.map((c) => {
      const inst = services.filter((s) => s.name === nm && s.node === c);
      return html`<td>${inst.length ? inst.map((s) => html`<div title=${s.id}><${Badge} s=${s.health} /></div>`) : html`<span class="note">—</span>`}</td>`;
    })}</tr>`)}</tbody></table></div>`;
}

const RATES = [{ label: 'in/s', stroke: '#0969da' }, { label: 'out/s', stroke: '#1a7f37' }];
const MINAVGMAX = [{ label: 'min', stroke: '#8c959f' }, { label: 'avg', stroke: '#0969da' }, { label: 'max', stroke: '#cf222e' }];

function Chart({ title, series, labels }) {
  const ref = useRef(null), plot = useRef(null);
  useEffect(() => {
    if (!ref.current || !window.uPlot) return;
    const opts = { width: Math.min(ref.current.clientWidth || 320, 560), height: 160,
      series: [{}].concat(labels || RATES), axes: [{}, { size: 50 }] };
    plot.current = new window.uPlot(opts, series, ref.current);
    return () => plot.current && plot.current.destroy();
  }, []);
  useEffect(() => { if (plot.current) plot.current.setData(series); }, [series]);
  return html`<div class="chart"><h3>${title}</h3><div ref=${ref}></div></div>`;
}

// the last hour of CPU busy % from the health service's history (1 min buckets)
function History({ node }) {
  const [series, setSeries] = useState(null);
  useEffect(() => {
    api('/api/v1/metrics/history?node=' + encodeURIComponent(node) + '&metric=cpu.percent&from=1h&step=60000').then((h) => {
      const p = h.points || [];
      setSeries([p.map((x) => x[0] / 1000), p.map((x) => x[1]), p.map((x) => x[2]), p.map((x) => x[3])]);
    }, () => setSeries(null));
  }, [node]);
  if (!series || !series[0].length) return html`<p class="note">${node}: no CPU history yet.</p>`;
  return html`<${Chart} title=${node + ' — CPU busy % (last hour)'} series=${series} labels=${MINAVGMAX} />`;
}

function Metrics({ hist, nodes, history }) {
  const live = Object.keys(hist).sort();
  const up = nodes.filter((m) => m.kind !== 'beam' && m.state === 'active').map((m) => m.node);
  return html`<div class="charts">
    ${history ? up.map((n) => html`<${History} key=${'h' + n} node=${n} />`) : ''}
    ${live.length ? live.map((n) => html`<${Chart} key=${n} title=${n + ' — distribution messages/s (live)'} series=${hist[n]} />`)
                  : html`<p class="note">Collecting the first live samples (every 5 s)…</p>`}
  </div>`;
}

function Alerts({ alerts, enabled, onAck }) {
  if (!enabled) return html`<p class="note">Alerts come from the node's health service, which this node does not run.</p>`;
  if (!alerts.length) return html`<p class="note">No alert.</p>`;
  return html`<div class="scroll"><table><thead><tr><th>state</th><th>severity</th><th>alert</th><th class="hide-narrow">since</th><th></th></tr></thead>
    <tbody>${alerts.map((a) => html`<tr data-alert=${a.id}>
      <td><${Badge} s=${a.state} /></td><td><${Badge} s=${a.severity} /></td>
      <td>${a.summary || a.rule || a.name}${a.node ? ' on ' + a.node : ''}</td>
      <td class="hide-narrow">${a.since_ms ? new Date(a.since_ms).toLocaleTimeString() : ''}</td>
      <td>${a.acked_by ? html`<span>acked by ${a.acked_by}</span>` : html`<button class="btn" data-ack=${a.id} onClick=${() => onAck(a.id)}>Acknowledge</button>`}</td>
    </tr>`)}</tbody></table></div>`;
}

// the task dispatcher (docs/tasks.md): the leader's tasks, newest first, and its agents;
// polled every 2 s while shown, and at once on a task event
function Tasks({ tick, onError }) {
  const [tasks, setTasks] = useState([]), [agents, setAgents] = useState([]), [state, setState] = useState('');
  const [none, setNone] = useState(null);
  const load = async () => {
    try {
      const q = state ? '&state=' + encodeURIComponent(state) : '';
      const [t, a] = await Promise.all([api('/api/v1/tasks?limit=100' + q), api('/api/v1/agents')]);
      setTasks(t); setAgents(a); setNone(null);
    } catch (e) { setNone(e.status === 503 ? 'No leader among the coordinators right now: ' + e.message : e.message); }
  };
  useEffect(() => { load(); const t = setInterval(load, 2000); return () => clearInterval(t); }, [state, tick]);
  const cancel = async (id) => {
    try { await api('/api/v1/tasks/' + encodeURIComponent(id) + '/cancel', { method: 'POST' }); load(); }
    catch (e) { onError(e.status === 401 || e.status === 403 ? 'Cancelling needs an operator API key: use "API key".' : e.message); }
  };
  const final = (s) => ['succeeded', 'failed', 'cancelled', 'timed_out'].includes(s);
  const states = ['queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out'];
  return html`<div>
    ${none ? html`<p class="note">${none}</p>` : ''}
    <h3>Agents</h3>
    ${agents.length ? html`<div class="scroll"><table><thead><tr><th>agent</th><th>in flight</th><th>types</th><th class="hide-narrow">capabilities</th><th class="hide-narrow">load</th></tr></thead>
      <tbody>${agents.map((a) => html`<tr data-agent=${a.node}><td>${a.node}</td><td>${a.in_flight} / ${a.limit}</td><td>${(a.types || []).join(', ')}</td>
        <td class="hide-narrow">${(a.capabilities || []).join(', ') || '—'}</td><td class="hide-narrow">${(a.load || 0).toFixed(2)}</td></tr>`)}</tbody></table></div>`
      : html`<p class="note">No agent has advertised a task type.</p>`}
    <h3>Tasks</h3>
    <div class="filters"><label>state<select value=${state} onChange=${(e) => setState(e.target.value)}><option value="">any</option>${states.map((x) => html`<option value=${x}>${x}</option>`)}</select></label></div>
    ${tasks.length ? html`<div class="scroll"><table><thead><tr><th>task</th><th>type</th><th>state</th><th>attempt</th><th class="hide-narrow">agent</th><th class="hide-narrow">submitted</th><th></th></tr></thead>
      <tbody>${tasks.map((t) => html`<tr data-task=${t.id} title=${'trace ' + t.trace_id}><td>${t.id}</td><td>${t.type}</td><td><${Badge} s=${t.state} /></td>
        <td>${t.attempt}${t.retries ? ' / ' + (t.retries + 1) : ''}</td><td class="hide-narrow">${t.agent || '—'}</td>
        <td class="hide-narrow">${new Date(t.submitted_ms).toLocaleTimeString()}</td>
        <td>${final(t.state) ? '' : html`<button class="btn" data-cancel=${t.id} onClick=${() => cancel(t.id)}>Cancel</button>`}</td></tr>`)}</tbody></table></div>`
      : html`<p class="note">No task${state ? ' ' + state : ''}. Submit one with beamlet task submit or POST /api/v1/tasks.</p>`}
  </div>`;
}

// the cluster configuration (docs/configuration.md): the settings as this gateway's node holds
// them, the history, and a form to set or unset a key (an admin API key: the gateway says 401/403
// otherwise). A write is committed (a majority of the coordinators hold it) or pending (202: the
// leader only, so far): a pending one is followed through its status URL until it is committed
// or lost. Polled every 3 s while shown.
function Config({ onError }) {
  const [doc, setDoc] = useState(null), [hist, setHist] = useState([]), [none, setNone] = useState(null);
  const [key, setKey] = useState(''), [value, setValue] = useState(''), [result, setResult] = useState(null);
  const load = async () => {
    try {
      const [d, h] = await Promise.all([api('/api/v1/config'), api('/api/v1/config/history')]);
      setDoc(d); setHist(h); setNone(null);
    } catch (e) { setNone(e.message); }
  };
  useEffect(() => { load(); const t = setInterval(load, 3000); return () => clearInterval(t); }, []);
  const follow = async (w) => { // a pending write: ask its status until it settles
    for (let i = 0; i < 30; i++) {
      await sleep(2000);
      try {
        const st = await api(w.status_url);
        if (st.state !== 'pending') { setResult({ state: st.state, text: 'version ' + w.version + ' of ' + w.key + ': ' + st.state }); load(); return; }
      } catch (e) { /* asked again */ }
    }
  };
  const write = async (k, v) => {
    setResult({ state: 'pending', text: 'sending…' });
    try {
      const w = v === null
        ? await api('/api/v1/config/' + encodeURIComponent(k), { method: 'DELETE' })
        : await api('/api/v1/config/' + encodeURIComponent(k), { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ value: v }) });
      const what = w.value === null || w.value === undefined ? 'unset' : '= ' + w.value;
      setResult({ state: w.state, text: 'version ' + w.version + ': ' + w.key + ' ' + what + ' — ' +
        (w.state === 'pending' ? 'pending: held by ' + w.holders + ' of the ' + w.needed + ' coordinators needed so far; following it…'
          : w.state === 'unchanged' ? 'nothing changed' : 'committed (a majority of the coordinators hold it)') });
      load();
      if (w.state === 'pending' && w.status_url) follow(w);
    } catch (e) {
      const msg = e.status === 401 || e.status === 403 ? 'Changing the cluster configuration needs an admin API key: use "API key".' : e.message;
      setResult({ state: 'error', text: msg });
      onError(null);
    }
  };
  const submit = (e) => { e.preventDefault(); if (key.trim()) write(key.trim(), value); };
  return html`<div>
    ${none ? html`<p class="note">${none}</p>` : ''}
    ${doc ? html`<p data-config-doc>version ${doc.version}, term ${doc.term}, leader ${doc.leader || 'none'}</p>` : ''}
    <h3>Settings</h3>
    ${doc && doc.settings.length ? html`<div class="scroll"><table><thead><tr><th>key</th><th>value</th><th>live</th><th class="hide-narrow">on this node</th><th></th></tr></thead>
      <tbody>${doc.settings.map((x) => html`<tr data-setting=${x.key}><td>${x.key}</td><td>${x.value}</td><td>${x.live ? 'yes' : 'no (restart)'}</td>
        <td class="hide-narrow"><${Badge} s=${x.applied === 'running' ? 'ok' : 'warn'} word=${x.applied} /></td>
        <td><button class="btn" data-unset=${x.key} onClick=${() => write(x.key, null)}>Unset</button></td></tr>`)}</tbody></table></div>`
      : html`<p class="note">No key is set cluster-wide: every node runs its own configuration.</p>`}
    <form class="filters" data-config-form onSubmit=${submit}>
      <label>key<input name="key" value=${key} onInput=${(e) => setKey(e.target.value)} placeholder="log_level" /></label>
      <label>value<input name="value" value=${value} onInput=${(e) => setValue(e.target.value)} placeholder="debug" /></label>
      <label>${'\u00a0'}<button class="btn" type="submit" data-config-set>Set cluster-wide</button></label>
    </form>
    ${result ? html`<p data-config-result data-state=${result.state} class=${result.state === 'error' || result.state === 'lost' ? 'err' : 'note'}>${result.text}</p>` : ''}
    <h3>History</h3>
    ${hist.length ? html`<div class="scroll"><table><thead><tr><th>version</th><th class="hide-narrow">when</th><th>key</th><th>old</th><th>new</th><th class="hide-narrow">who</th></tr></thead>
      <tbody>${hist.map((h) => html`<tr data-change=${h.version}><td>${h.version}</td><td class="hide-narrow">${new Date(h.at).toLocaleString()}</td><td>${h.key}</td>
        <td>${h.old === null ? '(unset)' : h.old}</td><td>${h.new === null ? '(unset)' : h.new}</td><td class="hide-narrow">${h.who}</td></tr>`)}</tbody></table></div>`
      : html`<p class="note">No change yet.</p>`}
  </div>`;
}

function Events({ events }) {
  const [type, setType] = useState(''), [sev, setSev] = useState(''), [node, setNode] = useState('');
  const rank = { info: 0, warn: 1, error: 2 };
  const shown = events.filter((e) => (!type || e.type === type) && (!sev || rank[e.severity] >= rank[sev]) &&
    (!node || (e.node || '').includes(node))).slice(-200).reverse();
  const types = [...new Set(events.map((e) => e.type))].sort();
  return html`<div>
    <div class="filters">
      <label>type<select value=${type} onChange=${(e) => setType(e.target.value)}><option value="">any</option>${types.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
      <label>severity (at least)<select value=${sev} onChange=${(e) => setSev(e.target.value)}><option value="">any</option><option value="info">info</option><option value="warn">warn</option><option value="error">error</option></select></label>
      <label>node<input value=${node} onInput=${(e) => setNode(e.target.value)} placeholder="name contains" /></label>
    </div>
    <div class="scroll"><table><thead><tr><th>time</th><th>severity</th><th>type</th><th>node</th><th class="hide-narrow">detail</th></tr></thead>
    <tbody>${shown.map((e) => html`<tr data-event=${e.id}><td>${new Date(e.time_ms).toLocaleTimeString()}</td><td><${Badge} s=${e.severity} /></td>
      <td>${e.type}</td><td>${e.node || ''}</td><td class="hide-narrow">${e.from ? e.from + ' → ' + e.to : e.name || e.leader || ''}</td></tr>`)}</tbody></table></div>
  </div>`;
}

function App() {
  const [view, setView] = useState('topology');
  const [cluster, setCluster] = useState(null);
  const [nodes, setNodes] = useState([]);
  const [links, setLinks] = useState(null);
  const [services, setServices] = useState([]);
  const [events, setEvents] = useState([]);
  const [alerts, setAlerts] = useState([]);
  const [features, setFeatures] = useState({});
  const [hist, setHist] = useState({});
  const [live, setLive] = useState(false);
  const [taskTick, setTaskTick] = useState(0);
  const [error, setError] = useState(null);
  const prev = useRef({});

  const load = async () => {
    try {
      const [c, n, s] = await Promise.all([api('/api/v1/cluster'), api('/api/v1/nodes'), api('/api/v1/services')]);
      setCluster(c); setNodes(n.sort((a, b) => a.node.localeCompare(b.node))); setServices(s); setError(null);
      if (feat.current.topology) api('/api/v1/topology').then((t) => setLinks(t.links), () => {});
    } catch (e) {
      setError(e.status === 401 ? 'This gateway needs an API key to read: use "API key".' : 'Cannot reach the gateway: ' + e.message);
    }
  };
  const feat = useRef({});
  const loadAlerts = async () => { if (feat.current.alerts) { try { setAlerts(await api('/api/v1/alerts')); } catch (e) { /* kept */ } } };

  useEffect(() => {
    (async () => {
      let f = {};
      try {
        const doc = await api('/api/v1/openapi.json');
        f = { alerts: !!doc.paths['/api/v1/alerts'], history: !!doc.paths['/api/v1/metrics/history'],
              topology: !!doc.paths['/api/v1/topology'], config: !!doc.paths['/api/v1/config'] };
      } catch (e) { /* the views that need it stay off */ }
      feat.current = f;
      setFeatures(f);
      await load();
      loadAlerts();
      try { setEvents(await api('/api/v1/events?limit=500')); } catch (e) { /* the stream fills it */ }
    })();
    stream((type, ev) => {
      setEvents((es) => (es.some((x) => x.id === ev.id) ? es : es.concat([ev]).slice(-1000)));
      if (type === 'node_state_changed' && ev.node) // redraw now, from the event itself
        setNodes((ns) => ns.map((m) => (m.node === ev.node ? Object.assign({}, m, { state: ev.to }) : m)));
      if (type.startsWith('node_') || type === 'leader_changed') load();
      if (type.startsWith('service_')) api('/api/v1/services').then(setServices, () => {});
      if (type.startsWith('alert')) loadAlerts();
      if (type === 'task') setTaskTick((n) => n + 1);
    }, setLive);
    const t = setInterval(() => { load(); loadAlerts(); }, 10000);
    return () => clearInterval(t);
  }, []);

  // live metrics: message rates per member, sampled every 5 s
  useEffect(() => {
    const tick = async () => {
      const up = nodes.filter((m) => m.kind !== 'beam' && m.state === 'active');
      for (const m of up) {
        try {
          const d = await api('/api/v1/nodes/' + encodeURIComponent(m.node));
          const st = d.detail && d.detail.stats;
          if (!st) continue;
          const now = Date.now() / 1000, p = prev.current[m.node];
          prev.current[m.node] = { t: now, i: st.messages_in, o: st.messages_out };
          if (!p) continue;
          const dt = Math.max(now - p.t, 0.001);
          setHist((h) => {
            const s = h[m.node] || [[], [], []];
            const n = [s[0].concat([now]), s[1].concat([(st.messages_in - p.i) / dt]), s[2].concat([(st.messages_out - p.o) / dt])].map((a) => a.slice(-120));
            return Object.assign({}, h, { [m.node]: n });
          });
        } catch (e) { /* the next tick tries again */ }
      }
    };
    tick();
    const t = setInterval(tick, 5000);
    return () => clearInterval(t);
  }, [nodes.map((m) => m.node + m.state).join()]);

  const ack = async (id) => {
    try { await api('/api/v1/alerts/' + encodeURIComponent(id) + '/ack', { method: 'POST' }); loadAlerts(); }
    catch (e) { setError(e.status === 401 || e.status === 403 ? 'Acknowledging needs an operator API key: use "API key".' : e.message); }
  };
  const askKey = () => {
    const k = window.prompt('API key (kept for this tab only):', sessionStorage.getItem(KEY) || '');
    if (k === null) return;
    if (k) sessionStorage.setItem(KEY, k.trim()); else sessionStorage.removeItem(KEY);
    load();
  };

  const views = [['topology', 'Topology'], ['services', 'Services'], ['metrics', 'Metrics'], ['alerts', 'Alerts'], ['tasks', 'Tasks']]
    .concat(features.config ? [['config', 'Config']] : []).concat([['events', 'Events']]);
  const failed = nodes.filter((m) => m.state === 'failed').length;
  const status = cluster ? cluster.health.status : 'unknown';
  return html`<header>
      <h1>beamlet · ${cluster ? cluster.name : '…'}</h1>
      <div class="meta">
        <span>status <${Badge} s=${status} /></span>
        <span>${nodes.length} members${failed ? html`, <strong class="s-failed">${failed} FAILED</strong>` : ''}</span>
        <span>leader ${cluster && cluster.leader ? cluster.leader : 'none'} (term ${cluster ? cluster.term : 0})</span>
        <span class="live">${live ? html`<${Badge} s="ok" word="live" />` : html`<${Badge} s="warn" word="reconnecting" />`}</span>
      </div>
      <button class="btn" onClick=${askKey}>API key</button>
    </header>
    <nav>${views.map(([id, label]) => html`<button aria-current=${view === id ? 'page' : null} onClick=${() => { setView(id); if (id === 'alerts') loadAlerts(); }}>${label}</button>`)}</nav>
    <main>
      ${error ? html`<p class="err" role="alert">${error}</p>` : ''}
      ${view === 'topology' ? html`<${Topology} nodes=${nodes} links=${links} />` : ''}
      ${view === 'services' ? html`<${Services} services=${services} nodes=${nodes} />` : ''}
      ${view === 'metrics' ? html`<${Metrics} hist=${hist} nodes=${nodes} history=${features.history} />` : ''}
      ${view === 'alerts' ? html`<${Alerts} alerts=${alerts} enabled=${features.alerts} onAck=${ack} />` : ''}
      ${view === 'tasks' ? html`<${Tasks} tick=${taskTick} onError=${setError} />` : ''}
      ${view === 'config' ? html`<${Config} onError=${setError} />` : ''}
      ${view === 'events' ? html`<${Events} events=${events} />` : ''}
    </main>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the loading line goes; Preact owns the container
render(html`<${App} />`, root);
