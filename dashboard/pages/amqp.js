// AMQP: the AMQP 0-9-1 door's exchanges, queues (messages ready and unacknowledged, consumers;
// searched and paged on the server), bindings, and a queue's consumers in a drawer; refreshed
// live, with a chart of the queued messages. Read-only: the door is changed by AMQP clients.

import { api, ApiError, qs } from '../api.js';
import { Series, legend, lineChart } from '../chart.js';
import { add, card, debounce, drawer, fill, fmt, h, kv, panel, pager, pill, table } from '../ui.js';

/** Rows per page of each list. */
const LIMIT = 50;
/** How often the figures are reloaded while the page is shown, ms. */
const REFRESH_MS = 2000;

// Kept across visits to the page, so the chart keeps its history.
const totals = { ready: new Series('ready', '#2563eb'), unacked: new Series('unacknowledged', '#d97706') };

const exchangeName = (n) => (n === '' ? '(AMQP default)' : n);
const json = (v) => (v && Object.keys(v).length ? JSON.stringify(v) : '—');

/** Pills for a queue's or exchange's flags. */
function flags(o) {
  return h('span', { class: 'flags' },
    o.durable ? pill('durable', 'info') : pill('transient', ''),
    o.exclusive ? pill('exclusive', 'warn') : null,
    o.auto_delete ? pill('auto-delete', '') : null,
    o.internal ? pill('internal', '') : null);
}

export async function render(root, ctx) {
  let overview;
  try {
    overview = await api.get('/v1/amqp/overview');
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      add(root, panel('AMQP 0-9-1 door', null, h('div', { class: 'empty', 'data-testid': 'amqp-off' },
        h('p', {}, h('strong', {}, `${e.message[0].toUpperCase()}${e.message.slice(1)}.`)),
        h('p', { class: 'muted' }, 'Set amqpListenPort in broker.properties (5672 is the usual port) and restart the broker to see exchanges, queues, bindings and consumers here.'))));
      return;
    }
    throw e;
  }

  const view = { queues: { offset: 0, q: '' }, exchanges: { offset: 0 }, bindings: { offset: 0 } };
  const cards = h('div', { class: 'cards', 'data-testid': 'amqp-cards' });
  const chartBody = h('div');
  const exchangesBody = h('div');
  const queuesBody = h('div');
  const bindingsBody = h('div');
  const queuesCount = h('span', { class: 'muted', 'data-testid': 'amqp-queues-count' });
  const search = h('input', { type: 'search', placeholder: 'Search queues by name…', 'data-testid': 'amqp-queue-search' });
  add(root,
    cards,
    h('div', { class: 'grid-2 top' },
      h('section', { class: 'panel chart-panel' },
        h('div', { class: 'panel-head' }, h('h2', {}, 'Queued messages (all queues, up to the last 5 minutes)')),
        h('div', { class: 'panel-body' }, chartBody)),
      panel('Bindings', null, bindingsBody, { flush: true, testid: 'amqp-bindings' })),
    panel(['Queues ', queuesCount], [search], queuesBody, { flush: true, testid: 'amqp-queues' }),
    panel('Exchanges', null, exchangesBody, { flush: true, testid: 'amqp-exchanges' }));

  const drawOverview = (o) => {
    const now = Date.now();
    totals.ready.push(now, o.messages_ready);
    totals.unacked.push(now, o.messages_unacknowledged);
    const partial = o.queues_counted < o.queues ? ` (${fmt(o.queues_counted)} of ${fmt(o.queues)} queues)` : '';
    fill(cards,
      card('Connections', fmt(o.connections), `${fmt(o.channels)} channel${o.channels === 1 ? '' : 's'}`, 'card-amqp-connections'),
      card('Consumers', fmt(o.consumers), 'on all queues', 'card-amqp-consumers'),
      card('Queues', fmt(o.queues), `${fmt(o.exchanges)} exchanges, ${fmt(o.bindings)} bindings`, 'card-amqp-queues'),
      card('Ready', fmt(o.messages_ready), `messages waiting${partial}`, 'card-amqp-ready'),
      card('Unacknowledged', fmt(o.messages_unacknowledged), `delivered, not yet acked${partial}`, 'card-amqp-unacked'));
    fill(chartBody, lineChart([totals.ready, totals.unacked], { label: 'queued messages', testid: 'chart-amqp-depth' }),
      legend([totals.ready, totals.unacked]));
  };

  const drawExchanges = (p) => fill(exchangesBody,
    table([
      { label: 'Name', value: (x) => (x.name === '' ? h('span', { class: 'muted' }, exchangeName(x.name)) : h('strong', {}, x.name)) },
      { label: 'Type', value: (x) => x.type },
      { label: 'Features', value: flags },
      { label: 'Arguments', value: (x) => h('code', {}, json(x.arguments)), wrap: true },
      { label: 'Bindings', value: (x) => h('span', { 'data-testid': 'exchange-bindings' }, fmt(x.bindings)), num: true },
    ], p.exchanges, { testid: 'amqp-exchanges-table', empty: 'No exchange.', rowAttrs: (x) => ({ 'data-exchange': x.name }) }),
    p.total > p.limit ? pager(p.offset, p.limit, p.total, (o) => { view.exchanges.offset = o; refresh(); }) : null);

  const drawQueues = (p) => {
    fill(queuesBody,
      table([
        { label: 'Queue', value: (q) => h('a', { href: '#', 'data-testid': 'amqp-queue-link', onclick: (e) => { e.preventDefault(); details(q.name); } }, q.name) },
        { label: 'Features', value: flags },
        { label: 'RocketMQ topic', value: (q) => h('code', {}, q.topic) },
        { label: 'State', value: (q) => (q.state === 'running' ? pill('running', 'ok') : pill(q.state, 'warn')) },
        { label: 'Ready', value: (q) => h('span', { 'data-testid': 'q-ready' }, fmt(q.messages_ready)), num: true },
        { label: 'Unacked', value: (q) => h('span', { 'data-testid': 'q-unacked' }, fmt(q.messages_unacknowledged)), num: true },
        { label: 'Total', value: (q) => fmt(q.messages), num: true },
        { label: 'Consumers', value: (q) => h('span', { 'data-testid': 'q-consumers' }, fmt(q.consumers)), num: true },
        { label: '', value: (q) => h('div', { class: 'row-actions' }, h('button', { class: 'btn btn-small', onclick: () => details(q.name) }, 'Consumers')) },
      ], p.queues, { testid: 'amqp-queues-table', empty: view.queues.q ? `No queue matches “${view.queues.q}”.` : 'No queue. AMQP clients declare them.', rowAttrs: (q) => ({ 'data-queue': q.name }) }),
      pager(p.offset, p.limit, p.total, (o) => { view.queues.offset = o; refresh(); }));
    fill(queuesCount, `· ${fmt(p.total)}${view.queues.q ? ` matching “${view.queues.q}”` : ''}`);
    queuesBody.dataset.total = String(p.total);
  };

  const drawBindings = (p) => fill(bindingsBody,
    bindingsTable(p.bindings, 'amqp-bindings-table', 'No binding. The default exchange reaches every queue by its name.'),
    p.total > p.limit ? pager(p.offset, p.limit, p.total, (o) => { view.bindings.offset = o; refresh(); }) : null);

  // Answers of an older round that arrive after a newer one are dropped.
  let round = 0;
  async function refresh() {
    const mine = ++round;
    const [o, x, q, b] = await Promise.all([
      api.get('/v1/amqp/overview'),
      api.get(`/v1/amqp/exchanges${qs({ offset: view.exchanges.offset, limit: LIMIT })}`),
      api.get(`/v1/amqp/queues${qs({ offset: view.queues.offset, limit: LIMIT, q: view.queues.q })}`),
      api.get(`/v1/amqp/bindings${qs({ offset: view.bindings.offset, limit: LIMIT })}`),
    ]);
    if (mine !== round) return;
    drawOverview(o);
    drawExchanges(x);
    drawQueues(q);
    drawBindings(b);
  }
  search.addEventListener('input', debounce(() => { view.queues.q = search.value.trim(); view.queues.offset = 0; refresh().catch(() => {}); }, 250));
  drawOverview(overview);
  await refresh();
  ctx.every(REFRESH_MS, () => refresh().catch(() => {}));
}

function bindingsTable(rows, testid, empty) {
  return table([
    { label: 'Source exchange', value: (b) => (b.source === '' ? h('span', { class: 'muted' }, exchangeName(b.source)) : b.source) },
    { label: 'Destination', value: (b) => h('span', {}, b.destination, ' ', pill(b.destination_type, b.destination_type === 'queue' ? '' : 'info')) },
    { label: 'Routing key', value: (b) => (b.routing_key === '' ? h('span', { class: 'muted' }, '(empty)') : h('code', {}, b.routing_key)) },
    { label: 'Arguments', value: (b) => h('code', {}, json(b.arguments)), wrap: true },
  ], rows, { testid, empty, rowAttrs: (b) => ({ 'data-binding': `${b.source}|${b.destination}|${b.routing_key}` }) });
}

/** The drawer of one queue: its settings, figures (live, with a chart), consumers and bindings. */
async function details(name) {
  const d = drawer(`Queue ${name}`, 'amqp-queue-detail');
  const infoBody = h('div');
  const chartBody = h('div');
  const consumersBody = h('div');
  const bindingsBody = h('div');
  const ready = new Series('ready', '#2563eb');
  const unacked = new Series('unacknowledged', '#d97706');
  add(d.body,
    panel('Queue', null, infoBody, { testid: 'amqp-queue-info' }),
    h('section', { class: 'panel chart-panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Messages (live)')),
      h('div', { class: 'panel-body' }, chartBody)),
    panel('Consumers', null, consumersBody, { flush: true, testid: 'amqp-queue-consumers' }),
    panel('Bindings to this queue', null, bindingsBody, { flush: true, testid: 'amqp-queue-bindings' }));

  async function load() {
    const [page, b] = await Promise.all([
      api.get(`/v1/amqp/queues${qs({ name, limit: 1 })}`),
      api.get(`/v1/amqp/bindings${qs({ queue: name, limit: 500 })}`),
    ]);
    const q = page.queues[0];
    if (!q) {
      fill(infoBody, h('div', { class: 'result bad' }, `The queue ${name} no longer exists.`));
      return;
    }
    const now = Date.now();
    ready.push(now, q.messages_ready);
    unacked.push(now, q.messages_unacknowledged);
    fill(infoBody, kv([
      ['Features', flags(q)],
      ['RocketMQ topic', h('code', {}, q.topic)],
      ['Consumer group', h('code', {}, q.group)],
      ['Arguments', h('code', {}, json(q.arguments))],
      ['Ready', h('strong', { 'data-testid': 'detail-ready' }, fmt(q.messages_ready))],
      ['Unacknowledged', h('strong', { 'data-testid': 'detail-unacked' }, fmt(q.messages_unacknowledged))],
      ['State', q.state === 'running' ? pill('running', 'ok') : pill(q.state, 'warn')],
    ]));
    fill(chartBody, lineChart([ready, unacked], { label: 'queue messages', testid: 'chart-amqp-queue' }), legend([ready, unacked]));
    fill(consumersBody, table([
      { label: 'Consumer tag', value: (c) => h('span', { class: 'flags' }, h('code', {}, c.consumer_tag), c.exclusive ? pill('exclusive', 'warn') : null) },
      { label: 'Client', value: (c) => h('span', {}, c.peer, ' ', h('span', { class: 'muted' }, `connection ${c.connection}`)) },
      { label: 'Channel', value: (c) => c.channel, num: true },
      { label: 'Ack', value: (c) => (c.ack_mode === 'manual' ? pill('manual', 'info') : pill('auto', '')) },
      { label: 'Prefetch', value: (c) => (c.prefetch_count ? fmt(c.prefetch_count) : h('span', { class: 'muted' }, 'none')), num: true },
      { label: 'Unacked', value: (c) => h('span', { 'data-testid': 'consumer-unacked' }, fmt(c.messages_unacknowledged)), num: true },
    ], q.consumer_details, { testid: 'amqp-consumers-table', empty: 'No consumer on this queue.', rowAttrs: (c) => ({ 'data-consumer': c.consumer_tag }) }));
    fill(bindingsBody, bindingsTable(b.bindings, 'amqp-queue-bindings-table', 'Only the default exchange reaches this queue (by its name).'));
  }
  await load();
  d.every(REFRESH_MS, () => load().catch(() => {}));
}
