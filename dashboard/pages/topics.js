// Topics: a paged list searched on the server; create, update, delete; a topic's queues
// (min/max offsets), route, and a test message.

import { api, qs, seg } from '../api.js';
import { add, fill, clear, debounce, drawer, fmt, h, kv, panel, pager, perm, pill, table } from '../ui.js';

const LIMIT = 50;

export async function render(root, ctx) {
  const view = { offset: 0, q: '', kind: 'normal' };
  const listBody = h('div');
  const count = h('span', { class: 'muted', 'data-testid': 'topics-count' });
  const search = h('input', { type: 'search', placeholder: 'Search topics by name…', 'data-testid': 'topic-search' });
  const kind = h('select', { 'data-testid': 'topic-kind' },
    ['normal', 'retry', 'dlq', 'system', 'all'].map((k) => h('option', { value: k }, k === 'dlq' ? 'dead-letter' : k)));
  const create = h('button', { class: 'btn btn-primary', 'data-testid': 'topic-create-open', onclick: () => createForm.hidden = !createForm.hidden }, 'Create topic');
  const name = h('input', { placeholder: 'orders', 'data-testid': 'topic-create-name', required: true });
  const rq = h('input', { type: 'number', min: 1, max: 1024, value: 8, 'data-testid': 'topic-create-read' });
  const wq = h('input', { type: 'number', min: 1, max: 1024, value: 8, 'data-testid': 'topic-create-write' });
  const createForm = h('form', { class: 'panel panel-body', hidden: true, onsubmit: async (e) => {
    e.preventDefault();
    const t = name.value.trim();
    const r = await ctx.write(() => api.put(`/v1/topics/${seg(t)}`, { read_queues: +rq.value, write_queues: +wq.value }), `Topic ${t} saved`);
    if (r) { createForm.hidden = true; name.value = ''; view.q = t; search.value = t; view.offset = 0; load(); }
  } }, h('div', { class: 'form-grid' },
    h('label', {}, 'Topic name', name), h('label', {}, 'Read queues', rq), h('label', {}, 'Write queues', wq),
    h('div', {}, h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'topic-create-submit' }, 'Save topic'))));

  add(root, 
    h('div', { class: 'toolbar' }, h('label', { class: 'grow' }, 'Search', search), h('label', {}, 'Kind', kind), create),
    createForm,
    panel(['Topics ', count], null, listBody, { flush: true, testid: 'topics' }));

  async function load() {
    const started = performance.now();
    const page = await api.get(`/v1/topics${qs({ offset: view.offset, limit: LIMIT, q: view.q, kind: view.kind })}`);
    fill(listBody, 
      table([
        { label: 'Topic', value: (t) => h('a', { href: '#', 'data-testid': 'topic-link', onclick: (e) => { e.preventDefault(); details(t.name, ctx); } }, t.name) },
        { label: 'Kind', value: (t) => pill(t.kind, t.kind === 'normal' ? 'info' : '') },
        { label: 'Read / write queues', value: (t) => `${t.read_queues} / ${t.write_queues}` },
        { label: 'Perm', value: (t) => h('code', {}, perm(t.perm)) },
        { label: 'Messages', value: (t) => fmt(t.total_messages), num: true },
        { label: '', value: (t) => h('div', { class: 'row-actions' },
          h('button', { class: 'btn btn-small', onclick: () => details(t.name, ctx) }, 'Details'),
          h('button', { class: 'btn btn-small btn-danger', 'data-testid': 'topic-delete', onclick: async () => {
            if (!ctx.canWrite() || !confirm(`Delete topic ${t.name}? Its messages stay in the CommitLog until retention removes them.`)) return;
            if (await ctx.write(() => api.del(`/v1/topics/${seg(t.name)}`), `Topic ${t.name} deleted`) !== undefined) load();
          } }, 'Delete')) },
      ], page.topics, { testid: 'topics-table', empty: view.q ? `No topic matches “${view.q}”.` : 'No topics.', rowAttrs: (t) => ({ 'data-topic': t.name }) }),
      pager(page.offset, page.limit, page.total, (o) => { view.offset = o; load(); }));
    fill(count, `· ${fmt(page.total)}${view.q ? ` matching “${view.q}”` : ''}`);
    listBody.dataset.loadedMs = String(Math.round(performance.now() - started));
    listBody.dataset.total = String(page.total);
  }

  search.addEventListener('input', debounce(() => { view.q = search.value.trim(); view.offset = 0; load(); }, 250));
  kind.addEventListener('change', () => { view.kind = kind.value; view.offset = 0; load(); });
  await load();
}

/** The drawer of one topic: queues, route, update, send a test message. */
async function details(topic, ctx) {
  const d = drawer(`Topic ${topic}`, 'topic-detail');
  const queuesBody = h('div');
  const routeBody = h('div');
  const sendResult = h('div');
  const body = h('textarea', { 'data-testid': 'send-body' }, 'hello from the console');
  const tag = h('input', { placeholder: 'TagA', 'data-testid': 'send-tag' });
  const keys = h('input', { placeholder: 'order-1, order-2', 'data-testid': 'send-keys' });
  const rq = h('input', { type: 'number', min: 1, max: 1024 });
  const wq = h('input', { type: 'number', min: 1, max: 1024 });
  add(d.body, 
    panel('Queues', null, queuesBody, { flush: true, testid: 'topic-queues' }),
    panel('Route (name server)', null, routeBody, { testid: 'topic-route' }),
    panel('Send a test message', null, h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const msg = { body: body.value, tag: tag.value.trim() || undefined, keys: keys.value.split(',').map((k) => k.trim()).filter(Boolean) };
      const r = await ctx.write(() => api.post(`/v1/topics/${seg(topic)}/messages`, msg), 'Message sent');
      if (r) {
        fill(sendResult, h('div', { class: 'result', 'data-testid': 'send-result' },
          'Stored: ', h('code', { 'data-testid': 'sent-id' }, r.message_id), ` on queue ${r.queue_id} at offset ${r.queue_offset} (${r.status}).`));
        loadQueues();
      }
    } }, h('div', { class: 'form-grid' }, h('label', {}, 'Tag', tag), h('label', {}, 'Keys (comma separated)', keys)),
    h('label', {}, 'Body', body),
    h('div', { class: 'toolbar' }, h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'send-submit' }, 'Send')), sendResult)),
    panel('Update queues', null, h('form', { onsubmit: async (e) => {
      e.preventDefault();
      if (await ctx.write(() => api.put(`/v1/topics/${seg(topic)}`, { read_queues: +rq.value, write_queues: +wq.value }), 'Topic updated')) loadQueues();
    } }, h('div', { class: 'form-grid' }, h('label', {}, 'Read queues', rq), h('label', {}, 'Write queues', wq),
      h('div', {}, h('button', { class: 'btn', type: 'submit' }, 'Update'))))));

  async function loadQueues() {
    const t = await api.get(`/v1/topics/${seg(topic)}`);
    rq.value = t.read_queues;
    wq.value = t.write_queues;
    fill(queuesBody, table([
      { label: 'Queue', value: (q) => q.queue_id, num: true },
      { label: 'Min offset', value: (q) => fmt(q.min_offset), num: true },
      { label: 'Max offset', value: (q) => fmt(q.max_offset), num: true },
      { label: 'Messages', value: (q) => fmt(q.max_offset - q.min_offset), num: true },
    ], t.queues, { testid: 'queues-table' }));
  }
  async function loadRoute() {
    try {
      const r = await api.get(`/v1/topics/${seg(topic)}/route`);
      fill(routeBody, 
        kv(r.brokers.map((b) => [b.broker_name, Object.entries(b.addrs).map(([id, a]) => `${id === '0' ? 'master' : `slave ${id}`} ${a}`).join(', ')])),
        table([
          { label: 'Broker', value: (q) => q.broker_name },
          { label: 'Read queues', value: (q) => q.read_queues, num: true },
          { label: 'Write queues', value: (q) => q.write_queues, num: true },
          { label: 'Perm', value: (q) => h('code', {}, perm(q.perm)) },
        ], r.queues, { testid: 'route-table' }));
    } catch (e) {
      fill(routeBody, h('p', { class: 'muted' }, e.message));
    }
  }
  await Promise.all([loadQueues(), loadRoute()]);
}
