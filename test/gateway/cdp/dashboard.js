// dashboard.js - drive a real headless Chromium through the DevTools protocol (over the vendored
// `ws` package) against a gateway's dashboard: no console errors or failed loads, every member in
// the topology, one member turning failed after a kill -9 without a reload, the views, phone
// width; screenshots for review. Prints one JSON line with the findings; exit 0 when all hold.
//   node dashboard.js URL OUTDIR NODES(comma) VICTIM_NODE VICTIM_PID [CHROMIUM]
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const WebSocket = require('./node_modules/ws');

// mode "tasks": only the Tasks view (a cluster with a coordinator), then done; mode "config": only
// the Config view (OPKEY is then an admin key)
const [url, outDir, nodesArg, victim, victimPid, chromeBin, opKey, queuedTask, mode] = process.argv.slice(2);
const nodes = nodesArg.split(',');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const result = { errors: [], checks: {}, screenshots: [] };
let chrome, ws;

function fail(msg) {
  result.failed = msg;
  finish(1);
}

function finish(code) {
  try { if (ws) ws.close(); } catch (e) { /* closing anyway */ }
  try { if (chrome) chrome.kill('SIGKILL'); } catch (e) { /* gone */ }
  console.log(JSON.stringify(result));
  process.exit(code);
}

function getJSON(u) {
  return new Promise((resolve, reject) => {
    http.get(u, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => { try { resolve(JSON.parse(b)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}

let nextId = 1;
const pending = new Map();
function send(method, params) {
  const id = nextId++;
  ws.send(JSON.stringify({ id, method, params: params || {} }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
}
async function evaluate(expr) {
  const r = await send('Runtime.evaluate', { expression: expr, returnByValue: true, awaitPromise: true });
  if (r.exceptionDetails) throw new Error('evaluate: ' + JSON.stringify(r.exceptionDetails).slice(0, 300));
  return r.result.value;
}
async function waitFor(expr, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await evaluate(expr);
    if (last) return last;
    await sleep(50);
  }
  throw new Error('timed out waiting for ' + what + ' (last: ' + JSON.stringify(last) + ')');
}
async function shot(name) {
  const r = await send('Page.captureScreenshot', { format: 'png' });
  const f = path.join(outDir, name);
  fs.writeFileSync(f, Buffer.from(r.data, 'base64'));
  result.screenshots.push(f);
}
async function viewport(width, height, mobile) {
  await send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile });
}

// tasks: the one that ran and the queued one, cancelled from the page (operator key)
async function tasksView() {
  const click = (label) => evaluate(`[...document.querySelectorAll('nav button')].find((b) => b.textContent === '${label}').click()`);
    await evaluate(`sessionStorage.setItem('beamlet_api_key', ${JSON.stringify(opKey)})`);
    await click('Tasks');
    await waitFor(`[...document.querySelectorAll('tr[data-task]')].some((r) => r.textContent.includes('succeeded')) && document.querySelector('tr[data-task="${queuedTask}"] button[data-cancel]') !== null`, 15000, 'the tasks table with a queued task to cancel');
    await waitFor(`(() => { const b = document.querySelector('tr[data-task="${queuedTask}"] button[data-cancel]'); if (!b) return false; b.click(); return true; })()`, 10000, 'the Cancel button clicked');
    await waitFor(`(document.querySelector('tr[data-task="${queuedTask}"]') || {}).textContent.includes('cancelled')`, 15000, 'the task cancelled');
    result.checks.task_cancelled = true;
    result.checks.agents = await evaluate(`document.querySelectorAll('tr[data-agent]').length`);
    await shot('gateway-dashboard-tasks.png');
}

// the cluster configuration: a set refused without a key, then with the admin key a set that
// commits (the settings and the history show it), a refused value named in the page, an unset
async function configView() {
  const click = (label) => evaluate(`[...document.querySelectorAll('nav button')].find((b) => b.textContent === '${label}').click()`);
  const fill = (k, v) => evaluate(`(() => { const f = document.querySelector('form[data-config-form]');
      for (const [n, v] of [['key', ${JSON.stringify(k)}], ['value', ${JSON.stringify(v)}]]) {
        const i = f.querySelector('input[name="' + n + '"]'); i.value = v; i.dispatchEvent(new Event('input', { bubbles: true })); }
      return true; })()`);
  const submit = () => evaluate(`document.querySelector('button[data-config-set]').click()`);
  const resultIs = (state, text) => `(() => { const r = document.querySelector('p[data-config-result]');
      return !!r && r.dataset.state === ${JSON.stringify(state)} && r.textContent.includes(${JSON.stringify(text)}); })()`;
  await evaluate(`sessionStorage.removeItem('beamlet_api_key')`);
  await waitFor(`[...document.querySelectorAll('nav button')].some((b) => b.textContent === 'Config')`, 10000, 'the Config tab');
  await click('Config');
  await waitFor(`document.querySelector('p[data-config-doc]') !== null && document.querySelector('form[data-config-form]') !== null`, 15000, 'the Config view');
  // no key: refused, and the page says what is needed
  await fill('log_level', 'debug');
  await submit();
  await waitFor(resultIs('error', 'admin API key'), 15000, 'the set refused without a key');
  result.checks.config_needs_key = true;
  await evaluate(`sessionStorage.setItem('beamlet_api_key', ${JSON.stringify(opKey)})`);
  await submit();
  await waitFor(resultIs('committed', 'log_level = debug'), 20000, 'the set committed');
  await waitFor(`((document.querySelector('tr[data-setting="log_level"]') || {}).textContent || '').includes('debug')`, 15000, 'log_level in the settings');
  await waitFor(`[...document.querySelectorAll('tr[data-change]')].some((r) => r.textContent.includes('log_level') && r.textContent.includes('debug'))`, 15000, 'the change in the history');
  result.checks.config_set = true;
  await shot('gateway-dashboard-config.png');
  // a value the rules refuse: the page shows the gateway's message naming the key
  await fill('heartbeat_interval_ms', 'abc');
  await submit();
  await waitFor(resultIs('error', 'heartbeat_interval_ms'), 15000, 'the bad value refused');
  result.checks.config_refused = true;
  // unset from the row's button
  await waitFor(`(() => { const b = document.querySelector('button[data-unset="log_level"]'); if (!b) return false; b.click(); return true; })()`, 10000, 'the Unset button clicked');
  await waitFor(resultIs('committed', 'log_level unset'), 20000, 'the unset committed');
  await waitFor(`document.querySelector('tr[data-setting="log_level"]') === null`, 15000, 'log_level gone from the settings');
  result.checks.config_unset = true;
  // the two refusals were meant: not counted as errors of the page
  const meant = /^(http 40[013] |log: Failed to load resource: the server responded with a status of 40[013] .*)http:\/\/[^ ]*\/api\/v1\/config\/(log_level|heartbeat_interval_ms)$/;
  result.errors = result.errors.filter((e) => !meant.test(e));
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bl-chrome-'));
  chrome = spawn(chromeBin || 'chromium', ['--headless', '--no-sandbox', '--disable-gpu',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--user-data-dir=' + dir, '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0', '--window-size=1280,900', 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
  chrome.stderr.on('data', () => {});
  const portFile = path.join(dir, 'DevToolsActivePort');
  const t0 = Date.now();
  while (!fs.existsSync(portFile) || fs.readFileSync(portFile, 'utf8').split('\n').length < 2) {
    if (Date.now() - t0 > 30000) return fail('chromium did not start (no DevToolsActivePort)');
    await sleep(50);
  }
  const port = fs.readFileSync(portFile, 'utf8').split('\n')[0].trim();
  let target;
  while (!(target = (await getJSON('http://127.0.0.1:' + port + '/json/list')).find((t) => t.type === 'page'))) await sleep(50);
  ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false });
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  ws.on('message', (m) => {
    const msg = JSON.parse(m);
    if (msg.id && pending.has(msg.id)) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p.reject(new Error(p.method + ': ' + msg.error.message)); else p.resolve(msg.result);
      return;
    }
    if (msg.method === 'Runtime.consoleAPICalled' && (msg.params.type === 'error' || msg.params.type === 'assert'))
      result.errors.push('console.' + msg.params.type + ': ' + msg.params.args.map((a) => a.value || a.description).join(' '));
    if (msg.method === 'Runtime.exceptionThrown')
      result.errors.push('exception: ' + (msg.params.exceptionDetails.exception || {}).description);
    if (msg.method === 'Log.entryAdded' && msg.params.entry.level === 'error')
      result.errors.push('log: ' + msg.params.entry.text + ' ' + (msg.params.entry.url || ''));
    if (msg.method === 'Network.responseReceived' && msg.params.response.status >= 400)
      result.errors.push('http ' + msg.params.response.status + ' ' + msg.params.response.url);
    if (msg.method === 'Network.loadingFailed' && !msg.params.canceled && !/stream/.test(msg.params.requestId))
      result.errors.push('load failed: ' + msg.params.errorText);
  });
  await send('Runtime.enable');
  await send('Log.enable');
  await send('Network.enable');
  await send('Page.enable');
  await viewport(1280, 900, false);
  await send('Page.navigate', { url });

  // every member in the topology, active
  const want = JSON.stringify(nodes.slice().sort());
  await waitFor(`(() => { const g = [...document.querySelectorAll('g[data-node]')];
      const act = g.filter((x) => x.dataset.state === 'active').map((x) => x.dataset.node).sort();
      return JSON.stringify(act) === ${JSON.stringify(want)}; })()`, 30000, 'every member active in the topology');
  if (mode === 'config') {
    await configView();
    if (result.errors.length) return fail('console or network errors');
    return finish(0);
  }
  if (mode === 'tasks') {
    await tasksView();
    if (result.errors.length) return fail('console or network errors');
    return finish(0);
  }
  result.checks.members = nodes.length;
  // the links are the members' own connections (/api/v1/topology): every pair of a C-only mesh
  const pairs = (nodes.length * (nodes.length - 1)) / 2;
  await waitFor(`document.querySelectorAll('line[data-link]').length === ${pairs}`, 15000, pairs + ' links drawn');
  result.checks.links = pairs;
  const loadedAt = await evaluate('window.__beamletLoadedAt');
  await waitFor(`document.querySelector('.live .badge') && document.querySelector('.live .badge').textContent === 'live'`, 10000, 'the stream');
  await shot('gateway-dashboard-topology.png');

  // kill -9 one member: it turns failed in place
  const tKill = Date.now();
  process.kill(Number(victimPid), 'SIGKILL');
  const sel = `document.querySelector('g[data-node="${victim}"]')`;
  await waitFor(`${sel} && ${sel}.dataset.state === 'failed'`, 20000, victim + ' failed in the topology');
  const tFailed = Date.now();
  result.checks.kill_to_failed_ms = tFailed - tKill;
  // and its links are gone from the drawing
  await waitFor(`![...document.querySelectorAll('line[data-link]')].some((l) => l.dataset.link.split('|').includes(${JSON.stringify(victim)}))`,
    15000, 'the links of ' + victim + ' removed');
  result.checks.reloaded = (await evaluate('window.__beamletLoadedAt')) !== loadedAt;
  if (result.checks.reloaded) return fail('the page reloaded');
  result.checks.state_word = await evaluate(`document.querySelector('[data-card="${victim}"]').textContent.includes('failed')`);
  if (!result.checks.state_word) return fail('the card shows no state word');
  // the cluster noticed at the failed event's time on the gateway: the page within a second of it
  const evs = await evaluate(`fetch('/api/v1/events?node=${encodeURIComponent(victim)}&type=node_state_changed').then((r) => r.json())`);
  const ev = evs.filter((e) => e.to === 'failed').pop();
  if (!ev) return fail('no failed event on the gateway');
  result.checks.noticed_to_red_ms = tFailed - ev.time_ms;
  if (result.checks.noticed_to_red_ms > 1000) return fail('red ' + result.checks.noticed_to_red_ms + ' ms after the cluster noticed');
  await shot('gateway-dashboard-failed.png');
  const click = (label) => evaluate(`[...document.querySelectorAll('nav button')].find((b) => b.textContent === '${label}').click()`);

  // the health service raises member_failed: acknowledge it from the page with an operator key
  // (kept in sessionStorage, as the "API key" button does)
  const hasAlerts = await evaluate(`fetch('/api/v1/openapi.json').then((r) => r.json()).then((d) => !!d.paths['/api/v1/alerts'])`);
  if (hasAlerts && opKey) {
    await evaluate(`sessionStorage.setItem('beamlet_api_key', ${JSON.stringify(opKey)})`);
    await click('Alerts');
    await waitFor(`[...document.querySelectorAll('tr[data-alert]')].some((r) => r.textContent.includes('${victim}') && r.querySelector('button[data-ack]'))`, 40000, 'the member_failed alert with an Acknowledge button');
    // found and clicked in one evaluation: the table may be redrawn between two
    await waitFor(`(() => { const r = [...document.querySelectorAll('tr[data-alert]')].find((x) => x.textContent.includes('${victim}') && x.querySelector('button[data-ack]')); if (!r) return false; r.querySelector('button[data-ack]').click(); return true; })()`, 15000, 'the Acknowledge button clicked');
    await waitFor(`[...document.querySelectorAll('tr[data-alert]')].some((r) => r.textContent.includes('${victim}') && r.textContent.includes('acked by'))`, 15000, 'the acknowledgement');
    result.checks.alert_acked = true;
    await shot('gateway-dashboard-alerts.png');
  } else {
    result.checks.alert_acked = 'no health service on this node';
  }

  // the other views
  await click('Services');
  await waitFor(`document.querySelector('tr[data-service="web"]') !== null`, 10000, 'the services grid');
  await shot('gateway-dashboard-services.png');
  await click('Events');
  await waitFor(`[...document.querySelectorAll('tr[data-event]')].some((r) => r.textContent.includes('${victim}') && r.textContent.includes('failed'))`, 10000, 'the failure in the event log');
  await evaluate(`(() => { const s = document.querySelectorAll('.filters select')[1]; s.value = 'error'; s.dispatchEvent(new Event('change', { bubbles: true })); })()`);
  await waitFor(`[...document.querySelectorAll('tr[data-event]')].every((r) => r.textContent.includes('error'))`, 5000, 'the severity filter');
  await shot('gateway-dashboard-events.png');
  await click('Metrics');
  await waitFor(`document.querySelectorAll('.chart canvas').length > 0`, 20000, 'a metrics graph');
  await shot('gateway-dashboard-metrics.png');
  await click('Alerts');
  result.checks.alerts = await evaluate(`document.querySelector('main').textContent`);

  // phone width: nothing wider than the screen
  await click('Topology');
  await viewport(390, 844, true);
  await sleep(300);
  result.checks.phone_scroll_width = await evaluate('document.documentElement.scrollWidth');
  await shot('gateway-dashboard-phone.png');
  if (result.checks.phone_scroll_width > 400) return fail('wider than a phone: ' + result.checks.phone_scroll_width);
  if (result.errors.length) return fail('console or network errors');
  finish(0);
}

main().catch((e) => fail(String(e && e.stack || e)));
setTimeout(() => fail('overall timeout'), 150000).unref();
