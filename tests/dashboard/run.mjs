// Drives the broker's web console in headless Chromium (playwright-core) and checks what each
// page shows against the REST API. Started by tests/it/dashboard.rs, which puts the data in the
// broker first; settings come from the environment:
//
//   BASE_URL        http://127.0.0.1:<httpListenPort>
//   CONSOLE_USER, CONSOLE_PASSWORD   the configured console user
//   SCREENSHOTS     directory for one PNG per page
//   WASM_PATH       a built plugin component to upload
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   AMQP_EXPECT     JSON: the AMQP queues (ready, unacked, consumers), bindings, exchanges and
//                   the consumer the test declared through lapin, as the AMQP page must show them
//
// Prints one line per step, `TIMING <name> <ms>` lines for the large-list figures, and exits
// non-zero with the reason on the first check that fails.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';

const base = process.env.BASE_URL;
const user = process.env.CONSOLE_USER;
const password = process.env.CONSOLE_PASSWORD;
const shots = process.env.SCREENSHOTS;
const wasm = process.env.WASM_PATH;
const amqpExpect = JSON.parse(process.env.AMQP_EXPECT || 'null');
mkdirSync(shots, { recursive: true });

const rest = async (path, init) => {
  const r = await fetch(base + path, init);
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
};
const enc = encodeURIComponent;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const step = (name) => console.log(`STEP ${name}`);
/** The browser window (screenshots of a whole page make it taller for the shot). */
const VIEWPORT = { width: 1440, height: 900 };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: VIEWPORT });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(e.message));
page.on('dialog', (d) => d.accept());

async function go(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(`#view[data-page="${hash.split('/')[1]}"][data-ready="true"]`);
}
async function shot(name, wholePage = false) {
  // Toasts are transient: left out of the screenshots so they hide nothing.
  await page.evaluate(() => document.getElementById('toasts').replaceChildren());
  // The whole page: a viewport as tall as the page (the sidebar is as tall as the viewport).
  if (wholePage) await page.setViewportSize({ width: VIEWPORT.width, height: await page.evaluate(() => document.documentElement.scrollHeight) });
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(shots, `${name}.png`) });
  if (wholePage) await page.setViewportSize(VIEWPORT);
}
/** Waits until the line of the chart `testid` joins at least two points. */
const chartLine = (testid) => page.waitForFunction((t) => [...document.querySelectorAll(`[data-testid=${t}] path`)]
  .some((p) => p.getAttribute('fill') === 'none' && p.getAttribute('d').includes('L')), testid, { timeout: 20000 });
const text = (sel) => page.locator(sel).first().innerText();
/** A figure as the page prints it ("1,234"), as a number. */
const num = async (sel) => Number((await text(sel)).replace(/,/g, ''));

// Some traffic for the live charts: a message every 100 ms to the topic `load` through the REST
// data plane, as a local client publishes (node:http, which sends no browser headers; Node's
// fetch adds Sec-Fetch-Mode and would be treated as a browser).
const loadStatus = {};
const load = setInterval(() => {
  const req = httpRequest(`${base}/v1/topics/load/messages`, { method: 'POST', headers: { 'content-type': 'text/plain' } });
  req.on('error', (e) => { loadStatus[e.code] = (loadStatus[e.code] || 0) + 1; });
  req.on('response', (r) => { loadStatus[r.statusCode] = (loadStatus[r.statusCode] || 0) + 1; r.resume(); });
  req.end('tick');
}, 100);

try {
  // --- start: / redirects to the console; login is on, so the console is read-only.
  step('open');
  await page.goto(`${base}/`);
  check(page.url().endsWith('/dashboard/'), `/ redirects to /dashboard/ (${page.url()})`);
  await page.waitForSelector('#view[data-ready="true"]');
  const session = (await rest('/v1/session')).body;
  check(session.login_required && session.user_configured, 'login is on with a user');
  check((await text('[data-testid=session-state]')).includes('read-only'), 'the console says read-only before login');

  // A write before login opens the login dialog instead of writing.
  step('write needs login');
  await go('#/topics');
  await page.click('[data-testid=topic-create-open]');
  await page.fill('[data-testid=topic-create-name]', 'console-topic');
  await page.click('[data-testid=topic-create-submit]');
  await page.waitForSelector('#login-dialog[open]');
  check((await rest('/v1/topics/console-topic')).status === 404, 'nothing was created without login');
  await shot('00-login');
  await page.fill('[data-testid=login-user]', user);
  await page.fill('[data-testid=login-password]', 'wrong');
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector('#login-error:not([hidden])');
  await page.fill('[data-testid=login-password]', password);
  await page.click('[data-testid=login-submit]');
  await page.waitForFunction(() => document.querySelector('[data-testid=session-state]').innerText.includes('Signed in'));
  check((await text('[data-testid=session-state]')).includes(user), 'signed in as the user');
  const cookies = await context.cookies();
  const c = cookies.find((x) => x.name === 'rmq_session');
  check(c && c.httpOnly && c.sameSite === 'Strict', `the session cookie is HttpOnly and SameSite=Strict (${JSON.stringify(c)})`);

  // --- cluster page against /v1/cluster/overview.
  step('cluster');
  await go('#/cluster');
  const overview = (await rest('/v1/cluster/overview')).body;
  const b0 = overview.brokers[0];
  await page.waitForSelector(`[data-testid=brokers-table] tr[data-broker="${b0.broker_name}"]`);
  const row = await text(`[data-testid=brokers-table] tr[data-broker="${b0.broker_name}"]`);
  check(row.includes(b0.addr) && row.includes(b0.version), `broker row shows address and version: ${row}`);
  check((await text('[data-testid=name-servers]')).includes(overview.name_servers[0]), 'name servers listed');
  // Live: the chart gets points without a reload.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=chart-tps] path').length >= 2, null, { timeout: 20000 });

  // --- topics: create, details (queues, route), send a test message.
  step('topics');
  await go('#/topics');
  await page.fill('[data-testid=topic-search]', 'orders');
  await page.waitForSelector('[data-testid=topics-table] tr[data-topic="orders"]');
  const orders = (await rest('/v1/topics/orders')).body;
  check((await text('tr[data-topic="orders"]')).includes(`${orders.read_queues} / ${orders.write_queues}`), 'queue counts as REST says');
  await page.click('[data-testid=topic-create-open]');
  await page.fill('[data-testid=topic-create-name]', 'console-topic');
  await page.fill('[data-testid=topic-create-read]', '2');
  await page.fill('[data-testid=topic-create-write]', '2');
  await page.click('[data-testid=topic-create-submit]');
  await page.waitForSelector('[data-testid=topics-table] tr[data-topic="console-topic"]');
  const created = await rest('/v1/topics/console-topic');
  check(created.status === 200 && created.body.read_queues === 2 && created.body.write_queues === 2, 'the topic was created with 2 queues');
  await shot('02-topics');
  await page.click('tr[data-topic="console-topic"] [data-testid=topic-link]');
  await page.waitForSelector('[data-testid=queues-table] tbody tr');
  check(await page.locator('[data-testid=queues-table] tbody tr').count() === 2, 'two queues shown');
  await page.waitForSelector('[data-testid=route-table] tbody tr');
  await page.fill('[data-testid=send-keys]', 'console-key-1');
  await page.fill('[data-testid=send-tag]', 'TagC');
  await page.fill('[data-testid=send-body]', '{"hello":"from the console"}');
  await page.click('[data-testid=send-submit]');
  await page.waitForSelector('[data-testid=sent-id]');
  const sentId = (await text('[data-testid=sent-id]')).trim();
  const byKey = (await rest(`/v1/topics/console-topic/messages?key=console-key-1`)).body.messages;
  check(byKey.length === 1 && byKey[0].message_id === sentId, `REST finds the sent message by key (${sentId})`);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=queues-table] tbody tr')].some((r) => r.innerText.trim().endsWith('1')));
  await shot('03-topic-detail');
  await page.click('[data-testid=drawer-close]');

  // --- messages: by key, detail, by time, by id.
  step('messages');
  await go('#/messages');
  await page.click('[data-testid=tab-key]');
  await page.fill('[data-testid=q-topic]', 'console-topic');
  await page.fill('[data-testid=q-key]', 'console-key-1');
  await page.click('[data-testid=q-search]');
  await page.waitForSelector(`[data-testid=messages-table] tr[data-message-id="${sentId}"]`);
  await page.click(`tr[data-message-id="${sentId}"] [data-testid=message-link]`);
  await page.waitForSelector('[data-testid=detail-body]');
  check((await text('[data-testid=detail-body]')).includes('from the console'), 'the body is shown');
  check((await text('[data-testid=detail-id]')).trim() === sentId, 'the id is shown');
  await shot('05-message-detail');
  await page.click('[data-testid=drawer-close]');
  await page.click('[data-testid=tab-time]');
  await page.fill('[data-testid=q-topic]', 'orders');
  await page.click('[data-testid=q-search]');
  await page.waitForSelector('[data-testid=messages-table] tbody tr');
  const now = Date.now();
  const byTime = (await rest(`/v1/topics/orders/messages?begin=${now - 3600000}&end=${now + 60000}&max=200`)).body;
  const shown = await page.locator('[data-testid=messages-table] tbody tr').count();
  check(shown === byTime.messages.length && shown > 0, `query by time shows ${shown}, REST ${byTime.messages.length}`);
  await shot('04-messages');
  await page.click('[data-testid=tab-id]');
  await page.fill('[data-testid=q-topic]', 'orders');
  await page.fill('[data-testid=q-id]', byTime.messages[0].message_id);
  await page.click('[data-testid=q-search]');
  await page.waitForSelector('[data-testid=delivery-table]');
  const delivery = await text('[data-testid=delivery-table]');
  check(delivery.includes('billing'), `delivery status lists the group billing: ${delivery}`);
  await page.click('[data-testid=drawer-close]');

  // --- consumer groups: lag as REST says, offset reset with a preview (the group is offline).
  step('groups');
  await go('#/groups');
  await page.fill('[data-testid=group-search]', 'billing');
  await page.waitForSelector('[data-testid=groups-table] tr[data-group="billing"]');
  const lag = (await rest('/v1/groups/billing/lag')).body;
  const lagShown = (await text('tr[data-group="billing"] [data-testid=group-lag]')).replace(/,/g, '');
  check(Number(lagShown) === lag.total_lag, `total lag ${lagShown} as REST ${lag.total_lag}`);
  await shot('06-groups');
  await page.click('tr[data-group="billing"] [data-testid=group-link]');
  await page.waitForSelector('[data-testid=lag-table] tbody tr');
  const lagRows = await page.locator('[data-testid=lag-table] tbody tr').allInnerTexts();
  check(lagRows.every((r) => !/(^|\s)-\d/.test(r)), `no negative figure in the lag table: ${lagRows}`);
  await page.selectOption('[data-testid=reset-topic]', 'orders');
  await page.selectOption('[data-testid=reset-mode]', 'earliest');
  await page.click('[data-testid=reset-preview-button]');
  await page.waitForSelector('[data-testid=reset-preview] tbody tr');
  const before = (await rest('/v1/groups/billing/offsets?topic=orders')).body.offsets;
  check(before.some((o) => o.offset > 0), 'the preview changed nothing yet');
  await shot('07-group-detail');
  await page.click('[data-testid=reset-apply]');
  await page.waitForSelector('[data-testid=reset-applied]');
  const after = (await rest('/v1/groups/billing/offsets?topic=orders')).body.offsets;
  check(after.length > 0 && after.every((o) => o.offset === 0), `offsets reset to the earliest: ${JSON.stringify(after)}`);
  await page.click('[data-testid=drawer-close]');

  // --- dead letters: resend one.
  step('dead letters');
  await go('#/messages');
  await page.click('[data-testid=tab-dlq]');
  await page.fill('[data-testid=q-group]', 'dlq_group');
  await page.click('[data-testid=q-search]');
  await page.waitForSelector('[data-testid=dlq] [data-testid=resend-one]');
  await shot('08-dead-letters');
  await page.click('[data-testid=dlq] [data-testid=resend-one]');
  await page.waitForSelector('[data-testid=resend-result]');
  check((await text('[data-testid=resend-result]')).startsWith('1 of 1'), 'one dead letter resent');
  // In bulk: the same one selected again is answered with the first result, not sent twice.
  await page.check('[data-testid=dlq] [data-testid=dlq-select]');
  await page.click('[data-testid=resend-selected]');
  await page.waitForFunction(() => document.querySelector('[data-testid=resend-result]')?.innerText.startsWith('1 of 1'));

  // --- plugins: upload, bind, counters and log.
  step('plugins');
  await go('#/plugins');
  await page.fill('[data-testid=upload-name]', 'console_filter');
  await page.selectOption('[data-testid=upload-role]', 'filter');
  await page.setInputFiles('[data-testid=upload-file]', wasm);
  await page.fill('[data-testid=upload-params]', 'field=order.region\nequals=eu');
  await page.click('[data-testid=upload-submit]');
  await page.waitForSelector('[data-testid=plugins-table] tr[data-plugin="console_filter"]');
  const plugins = (await rest('/v1/plugins')).body;
  check(plugins.plugins.some((p) => p.name === 'console_filter' && p.role === 'filter'), 'REST lists the uploaded plugin');
  await page.click('tr[data-plugin="console_filter"] [data-testid=plugin-link]');
  await page.waitForSelector('[data-testid=counters-table]');
  await page.fill('[data-testid=bind-group]', 'billing');
  await page.fill('[data-testid=bind-topic]', 'orders');
  await page.click('[data-testid=bind-submit]');
  await page.waitForSelector('[data-testid=plugin-bindings] [data-testid=bindings-table] tbody tr');
  const bound = (await rest('/v1/plugins')).body.bindings;
  check(bound.some((b) => b.plugin === 'console_filter' && b.group === 'billing' && b.topic === 'orders'), 'REST lists the binding');
  await shot('10-plugin-detail');
  await page.click('[data-testid=drawer-close]');
  await shot('09-plugins');

  // --- AMQP: exchanges, queues (ready, unacked, consumers), bindings and a queue's consumers,
  // against /v1/amqp/... and the figures of what the test declared and consumed through lapin.
  step('amqp');
  check(amqpExpect, 'AMQP_EXPECT is set');
  await go('#/amqp');
  const amqpQueues = (await rest('/v1/amqp/queues?limit=500')).body;
  const amqpOverview = (await rest('/v1/amqp/overview')).body;
  for (const want of amqpExpect.queues) {
    const got = amqpQueues.queues.find((q) => q.name === want.name);
    check(got, `REST lists the queue ${want.name}`);
    check(got.messages_ready === want.ready && got.messages_unacknowledged === want.unacked && got.consumers === want.consumers,
      `REST figures of ${want.name}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
    const rowSel = `[data-testid=amqp-queues-table] tr[data-queue="${want.name}"]`;
    await page.waitForSelector(rowSel);
    const shown = [await num(`${rowSel} [data-testid=q-ready]`), await num(`${rowSel} [data-testid=q-unacked]`), await num(`${rowSel} [data-testid=q-consumers]`)];
    check(JSON.stringify(shown) === JSON.stringify([want.ready, want.unacked, want.consumers]),
      `the page shows ${want.name} ready/unacked/consumers ${shown}, expected ${want.ready}/${want.unacked}/${want.consumers}`);
    check((await text(rowSel)).includes(got.topic), `the row of ${want.name} names its topic ${got.topic}`);
  }
  check(await num('[data-testid=card-amqp-ready] .card-value') === amqpOverview.messages_ready, 'the Ready card as REST says');
  check(await num('[data-testid=card-amqp-unacked] .card-value') === amqpOverview.messages_unacknowledged, 'the Unacknowledged card as REST says');
  check(amqpOverview.messages_ready === amqpExpect.queues.reduce((a, q) => a + q.ready, 0), `REST total ready ${amqpOverview.messages_ready}`);
  check(await num('[data-testid=card-amqp-consumers] .card-value') === amqpOverview.consumers, 'the Consumers card as REST says');
  const amqpExchanges = (await rest('/v1/amqp/exchanges?limit=500')).body.exchanges;
  check(await page.locator('[data-testid=amqp-exchanges-table] tbody tr').count() === amqpExchanges.length, 'every exchange REST lists is shown');
  for (const want of amqpExpect.exchanges) {
    const row = await text(`[data-testid=amqp-exchanges-table] tr[data-exchange="${want.name}"]`);
    check(row.includes(want.type) && row.includes(want.durable ? 'durable' : 'transient'), `exchange ${want.name}: ${row}`);
  }
  const amqpBindings = (await rest('/v1/amqp/bindings?limit=500')).body;
  check(amqpBindings.total === amqpExpect.bindings.length, `REST lists ${amqpBindings.total} bindings`);
  check(await page.locator('[data-testid=amqp-bindings-table] tbody tr').count() === amqpBindings.total, 'every binding is shown');
  for (const b of amqpExpect.bindings) {
    await page.waitForSelector(`[data-testid=amqp-bindings-table] tr[data-binding="${b.source}|${b.destination}|${b.routing_key}"]`);
  }
  // Live: the chart of queued messages gets a line without a reload (a few seconds of it for the
  // screenshot, which shows the whole page).
  await chartLine('chart-amqp-depth');
  await page.waitForTimeout(6000);
  await shot('amqp', true);
  // A queue's consumers in the drawer.
  const cw = amqpExpect.consumer;
  await page.click(`tr[data-queue="${cw.queue}"] [data-testid=amqp-queue-link]`);
  const consumerRow = `[data-testid=amqp-consumers-table] tr[data-consumer="${cw.tag}"]`;
  await page.waitForSelector(consumerRow);
  const consumerText = await text(consumerRow);
  check(consumerText.includes('manual') && consumerText.includes('127.0.0.1:'), `the consumer row: ${consumerText}`);
  check(await num(`${consumerRow} [data-testid=consumer-unacked]`) === cw.unacked, 'the consumer holds its unacknowledged messages');
  check(await page.locator('[data-testid=amqp-queue-bindings-table] tbody tr').count() === amqpExpect.bindings.filter((b) => b.destination === cw.queue).length, 'the bindings to the queue');
  await chartLine('chart-amqp-queue');
  await page.waitForTimeout(4000);
  await shot('amqp-queue');
  await page.click('[data-testid=drawer-close]');
  // Server-side search.
  await page.fill('[data-testid=amqp-queue-search]', 'audit');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=amqp-queues-table] tbody tr').length === 1);
  // With the door off the page says so (the 404 itself is checked over REST by the Rust test).
  await page.route('**/v1/amqp/overview', (r) => r.fulfill({ status: 404, contentType: 'application/problem+json',
    body: JSON.stringify({ title: 'Not Found', status: 404, code: 'NOT_FOUND', detail: 'the AMQP door is off: amqpListenPort=0' }) }));
  await go('#/cluster');
  await go('#/amqp');
  check((await text('[data-testid=amqp-off]')).includes('amqpListenPort=0'), 'the page says the door is off');
  await shot('amqp-off');
  await page.unroute('**/v1/amqp/overview');

  // --- large lists: time to the first page of topics and groups, measured in the browser.
  step('large lists');
  for (const [name, hash, path] of [['topics', '#/topics', '/v1/topics?limit=1&kind=normal'], ['groups', '#/groups', '/v1/groups?limit=1']]) {
    const total = (await rest(path)).body.total;
    const ms = await page.evaluate(async ([h, p]) => {
      const t0 = performance.now();
      location.hash = h;
      for (;;) {
        const v = document.querySelector(`#view[data-page="${p}"][data-ready="true"]`);
        if (v && v.querySelector('tbody tr')) return performance.now() - t0;
        await new Promise((r) => setTimeout(r, 5));
      }
    }, [hash, name]);
    const pagerText = await text('[data-testid=pager-text]');
    check(pagerText.endsWith(`of ${total.toLocaleString('en-US')}`), `${name} pager "${pagerText}" names the REST total ${total}`);
    check(await page.locator(`[data-testid=${name}-table] tbody tr`).count() === 50, `${name}: a page of 50 rows`);
    console.log(`TIMING ${name}_first_page_ms ${Math.round(ms)} (of ${total})`);
    await shot(name === 'topics' ? '11-topics-large' : '12-groups-large');
  }
  // Server-side search over the large list.
  await page.fill('[data-testid=group-search]', 'bulk-group-01');
  const searched = (await rest('/v1/groups?q=bulk-group-01&limit=1')).body.total;
  await page.waitForFunction((n) => document.querySelector('[data-testid=pager-text]')?.innerText.endsWith(`of ${n}`), searched.toLocaleString('en-US'));
  const t0 = Date.now();
  await page.click('[data-testid=pager-next]');
  await page.waitForFunction(() => document.querySelector('[data-testid=pager-text]')?.innerText.startsWith('51–'));
  console.log(`TIMING groups_next_page_ms ${Date.now() - t0}`);

  // --- the cluster page again, with a few minutes of live figures in its chart.
  step('cluster charts');
  await go('#/cluster');
  await page.waitForFunction(() => document.querySelector('[data-testid=card-tps-in] .card-value')?.innerText !== '0', null, { timeout: 20000 });
  await page.waitForTimeout(10000);
  await shot('01-cluster');

  // --- log out: read-only again.
  step('logout');
  await page.click('[data-testid=logout]');
  await page.waitForFunction(() => document.querySelector('[data-testid=session-state]').innerText.includes('read-only'));
  check(consoleErrors.length === 0, `no script errors in the page: ${consoleErrors.join('; ')}`);
  console.log('DASHBOARD OK');
} catch (e) {
  await page.screenshot({ path: join(shots, 'failure.png') }).catch(() => {});
  console.error(`FAILED: ${e.stack || e.message}`);
  process.exitCode = 1;
} finally {
  clearInterval(load);
  console.log(`LOAD ${JSON.stringify(loadStatus)}`);
  await browser.close();
}
