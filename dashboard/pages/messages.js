// Messages: query by topic and time range, by key, by id; a message's body, properties and
// delivery status per group; dead letters of a group, resent one at a time or in bulk.

import { api, qs, seg } from '../api.js';
import { add, fill, bytes, clear, drawer, fmt, h, kv, localInputMs, panel, pill, table, time, toast, toLocalInput } from '../ui.js';

const TABS = [['time', 'By topic and time'], ['key', 'By key'], ['id', 'By message id'], ['dlq', 'Dead letters']];

export async function render(root, ctx, [tab]) {
  let active = TABS.some(([t]) => t === tab) ? tab : 'time';
  const tabs = h('div', { class: 'tabs' });
  const form = h('div', { class: 'panel-body' });
  const results = h('div');
  add(root, h('section', { class: 'panel' }, tabs, form), results);

  const topic = h('input', { placeholder: 'topic', 'data-testid': 'q-topic' });
  const begin = h('input', { type: 'datetime-local', step: 1, value: toLocalInput(Date.now() - 3600 * 1000), 'data-testid': 'q-begin' });
  const end = h('input', { type: 'datetime-local', step: 1, value: toLocalInput(Date.now() + 60 * 1000), 'data-testid': 'q-end' });
  const key = h('input', { placeholder: 'order-42', 'data-testid': 'q-key' });
  const id = h('input', { placeholder: 'message id or offset message id', 'data-testid': 'q-id', size: 40 });
  const group = h('input', { placeholder: 'consumer group', 'data-testid': 'q-group' });

  const drawTabs = () => {
    fill(tabs, ...TABS.map(([t, label]) => h('button', { class: t === active ? 'active' : '', 'data-testid': `tab-${t}`, onclick: () => { active = t; drawTabs(); drawForm(); clear(results); } }, label)));
  };
  const search = h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'q-search' }, 'Search');
  const drawForm = () => {
    // Built for the active tab only: the topic input is shared and a node has one place.
    const fields = {
      time: () => [h('label', {}, 'Topic', topic), h('label', {}, 'From', begin), h('label', {}, 'To', end)],
      key: () => [h('label', {}, 'Topic', topic), h('label', {}, 'Key', key)],
      id: () => [h('label', {}, 'Topic', topic), h('label', {}, 'Message id', id)],
      dlq: () => [h('label', {}, 'Consumer group', group)],
    }[active]();
    fill(form, h('form', { onsubmit: (e) => { e.preventDefault(); run(); } }, h('div', { class: 'form-grid' }, fields, h('div', {}, search))));
  };

  async function run() {
    clear(results);
    try {
      if (active === 'dlq') return deadLetters(group.value.trim(), results, ctx);
      const t = topic.value.trim();
      if (!t) throw new Error('name a topic');
      let found;
      let note = null;
      if (active === 'time') {
        const r = await api.get(`/v1/topics/${seg(t)}/messages${qs({ begin: localInputMs(begin.value), end: localInputMs(end.value), max: 200 })}`);
        found = r.messages;
        if (r.partial) note = 'Partial result: the scan stopped at its budget; narrow the time range to see the rest.';
      } else if (active === 'key') {
        found = (await api.get(`/v1/topics/${seg(t)}/messages${qs({ key: key.value.trim() })}`)).messages;
      } else {
        found = [await api.get(`/v1/topics/${seg(t)}/messages/${seg(id.value.trim())}`)];
      }
      add(results, panel(`${fmt(found.length)} message${found.length === 1 ? '' : 's'}`, null,
        [note ? h('div', { class: 'result bad' }, note) : null, messageTable(found, ctx)], { flush: true, testid: 'message-results' }));
      if (active === 'id' && found.length === 1) showMessage(found[0]);
    } catch (e) {
      add(results, h('div', { class: 'result bad', 'data-testid': 'query-error' }, e.message));
    }
  }

  drawTabs();
  drawForm();
}

function messageTable(found, ctx, extra) {
  return table([
    extra?.select ? { label: '', value: (m) => extra.select(m) } : null,
    { label: 'Message id', value: (m) => h('a', { href: '#', 'data-testid': 'message-link', onclick: (e) => { e.preventDefault(); showMessage(m); } }, h('code', {}, m.message_id)) },
    { label: 'Tag', value: (m) => m.tag || '—' },
    { label: 'Keys', value: (m) => (m.keys.length ? m.keys.join(', ') : '—') },
    { label: 'Queue / offset', value: (m) => `${m.queue_id} / ${m.queue_offset}` },
    { label: 'Stored', value: (m) => time(m.store_timestamp) },
    { label: 'Size', value: (m) => bytes(m.body_size), num: true },
    extra?.action ? { label: '', value: (m) => extra.action(m) } : null,
  ].filter(Boolean), found, { empty: 'No message found.', testid: 'messages-table', rowAttrs: (m) => ({ 'data-message-id': m.message_id }) });
  void ctx;
}

/** The detail drawer of a message (fetched again by id for its delivery status). */
async function showMessage(m) {
  const d = drawer('Message', 'message-detail');
  let full = m;
  try {
    full = await api.get(`/v1/topics/${seg(m.topic)}/messages/${seg(m.offset_message_id || m.message_id)}`);
  } catch { /* the listed copy is shown */ }
  let bodyText = full.body;
  if (full.body_encoding === 'utf8') {
    try { bodyText = JSON.stringify(JSON.parse(full.body), null, 2); } catch { /* not JSON */ }
  }
  add(d.body, 
    panel('Overview', null, kv([
      ['Message id', h('code', { 'data-testid': 'detail-id' }, full.message_id)],
      ['Offset message id', h('code', {}, full.offset_message_id)],
      ['Topic', full.topic], ['Tag', full.tag], ['Keys', full.keys.join(', ') || '—'],
      ['Queue / offset', `${full.queue_id} / ${full.queue_offset}`],
      ['Born', time(full.born_timestamp)], ['Stored', time(full.store_timestamp)],
      ['Reconsume times', full.reconsume_times], ['Body', `${bytes(full.body_size)} (${full.body_encoding})`],
    ])),
    panel('Body', null, h('pre', { class: 'body', 'data-testid': 'detail-body' }, bodyText)),
    panel('Properties', null, table([
      { label: 'Name', value: ([k]) => h('code', {}, k) },
      { label: 'Value', value: ([, v]) => v, wrap: true },
    ], Object.entries(full.properties || {}), { empty: 'No user properties.' }), { flush: true }),
    panel('Delivery per consumer group', null, table([
      { label: 'Group', value: (x) => x.group },
      { label: 'Status', value: (x) => pill(x.status.replaceAll('_', ' ').toLowerCase(), x.status === 'CONSUMED' ? 'ok' : x.status === 'NOT_CONSUMED_YET' ? 'warn' : '') },
      { label: 'Group offset', value: (x) => fmt(x.consumer_offset), num: true },
    ], full.delivery || [], { empty: 'No consumer group reads this topic.', testid: 'delivery-table' }), { flush: true }));
}

/** The dead letters of a group, with resend one by one or of the selected ones. */
async function deadLetters(group, results, ctx) {
  if (!group) throw new Error('name a consumer group');
  const dlq = `%DLQ%${group}`;
  let page;
  try {
    page = await api.get(`/v1/topics/${seg(dlq)}/queues/0/messages${qs({ offset: 'earliest', max: 32 })}`);
  } catch (e) {
    if (e.status === 404 || e.status === 400) {
      add(results, h('div', { class: 'result', 'data-testid': 'dlq-empty' }, `Group ${group} has no dead letters.`));
      return;
    }
    throw e;
  }
  const chosen = new Set();
  const status = h('div');
  const resend = async (ids) => {
    const r = await ctx.write(() => api.post(`/v1/groups/${seg(group)}/dead-letters/resend`, { message_ids: ids }, { withStatus: true }));
    if (!r) return;
    const ok = r.data.results.filter((x) => x.status === 200).length;
    fill(status, h('div', { class: ok === ids.length ? 'result' : 'result bad', 'data-testid': 'resend-result' },
      `${ok} of ${ids.length} resent to ${group}.`,
      r.data.results.filter((x) => x.status !== 200).map((x) => h('div', {}, `${x.message_id}: ${x.detail}`))));
    toast(`${ok} of ${ids.length} dead letters resent`, ok === ids.length ? 'ok' : 'bad');
  };
  const bulk = h('button', { class: 'btn btn-primary', 'data-testid': 'resend-selected', onclick: () => chosen.size && resend([...chosen]) }, 'Resend selected');
  add(results, panel(`Dead letters of ${group} (${fmt(page.max_offset - page.min_offset)})`, [bulk],
    [status, messageTable(page.messages, ctx, {
      select: (m) => h('input', { type: 'checkbox', 'data-testid': 'dlq-select', onchange: (e) => (e.target.checked ? chosen.add(m.offset_message_id) : chosen.delete(m.offset_message_id)) }),
      action: (m) => h('button', { class: 'btn btn-small', 'data-testid': 'resend-one', onclick: () => resend([m.offset_message_id]) }, 'Resend'),
    })], { flush: true, testid: 'dlq' }));
}
