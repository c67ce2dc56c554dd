// Consumer groups: a paged, searched list with total lag; a group's members, subscriptions, lag
// per queue (live, with a chart) and an offset reset by time with a preview (online or offline).

import { api, qs, seg } from '../api.js';
import { Series, legend, lineChart } from '../chart.js';
import { add, fill, clear, debounce, drawer, fmt, h, localInputMs, panel, pager, pill, table, toLocalInput } from '../ui.js';

const LIMIT = 50;

export async function render(root, ctx, [open]) {
  const view = { offset: 0, q: '' };
  const listBody = h('div');
  const count = h('span', { class: 'muted', 'data-testid': 'groups-count' });
  const search = h('input', { type: 'search', placeholder: 'Search groups by name…', 'data-testid': 'group-search' });
  add(root, 
    h('div', { class: 'toolbar' }, h('label', { class: 'grow' }, 'Search', search)),
    panel(['Consumer groups ', count], null, listBody, { flush: true, testid: 'groups' }));

  async function load() {
    const started = performance.now();
    const page = await api.get(`/v1/groups${qs({ offset: view.offset, limit: LIMIT, q: view.q })}`);
    fill(listBody, 
      table([
        { label: 'Group', value: (g) => h('a', { href: '#', 'data-testid': 'group-link', onclick: (e) => { e.preventDefault(); details(g.name, ctx); } }, g.name) },
        { label: 'State', value: (g) => (g.online ? pill(`${g.members} online`, 'ok') : pill('offline', '')) },
        { label: 'Model', value: (g) => g.message_model || '—' },
        { label: 'Topics', value: (g) => (g.topics.length ? g.topics.join(', ') : '—') },
        { label: 'Total lag', value: (g) => h('span', { 'data-testid': 'group-lag' }, fmt(g.total_lag)), num: true },
        { label: 'Max retries', value: (g) => g.retry_max_times, num: true },
        { label: '', value: (g) => h('div', { class: 'row-actions' }, h('button', { class: 'btn btn-small', onclick: () => details(g.name, ctx) }, 'Details')) },
      ], page.groups, { testid: 'groups-table', empty: view.q ? `No group matches “${view.q}”.` : 'No consumer groups.', rowAttrs: (g) => ({ 'data-group': g.name }) }),
      pager(page.offset, page.limit, page.total, (o) => { view.offset = o; load(); }));
    fill(count, `· ${fmt(page.total)}${view.q ? ` matching “${view.q}”` : ''}`);
    listBody.dataset.loadedMs = String(Math.round(performance.now() - started));
    listBody.dataset.total = String(page.total);
  }
  search.addEventListener('input', debounce(() => { view.q = search.value.trim(); view.offset = 0; load(); }, 250));
  await load();
  if (open) details(open, ctx);
}

/** The drawer of one group. */
async function details(group, ctx) {
  const d = drawer(`Group ${group}`, 'group-detail');
  const membersBody = h('div');
  const lagBody = h('div');
  const chartBody = h('div');
  const lagSeries = new Series('total lag', '#d97706');
  const resetBody = h('div');
  add(d.body, 
    panel('Members and subscriptions', null, membersBody, { testid: 'group-members' }),
    h('section', { class: 'panel chart-panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Lag (live)')),
      h('div', { class: 'panel-body' }, chartBody)),
    panel('Lag per queue', null, lagBody, { flush: true, testid: 'group-lag-queues' }),
    panel('Reset offsets', null, resetBody, { testid: 'group-reset' }));

  let topics = [];
  async function loadMembers() {
    const c = await api.get(`/v1/groups/${seg(group)}/consumers`);
    fill(membersBody, 
      h('p', {}, c.online ? pill(`${c.members.length} consumer${c.members.length === 1 ? '' : 's'} online`, 'ok') : pill('offline: no consumer connected', ''),
        c.message_model ? ` ${c.message_model}` : '', c.consume_type ? ` · ${c.consume_type}` : ''),
      table([
        { label: 'Client id', value: (m) => h('code', {}, m.client_id) },
        { label: 'Address', value: (m) => m.addr },
        { label: 'Language', value: (m) => m.language },
        { label: 'Version', value: (m) => m.version, num: true },
      ], c.members, { empty: 'No consumer of this group is connected.', testid: 'members-table' }),
      h('h3', { class: 'spaced' }, 'Subscriptions'),
      table([
        { label: 'Topic', value: (s) => s.topic },
        { label: 'Expression', value: (s) => h('code', {}, s.expression || '*') },
      ], c.subscriptions, { empty: 'No subscription is known (nobody online).', testid: 'subscriptions-table' }));
    topics = [...new Set([...topics, ...c.subscriptions.map((s) => s.topic).filter((t) => !t.startsWith('%RETRY%'))])];
  }
  async function loadLag() {
    const l = await api.get(`/v1/groups/${seg(group)}/lag`);
    lagSeries.push(Date.now(), l.total_lag);
    topics = [...new Set([...topics, ...l.queues.map((q) => q.topic)])];
    fill(lagBody, 
      h('div', { class: 'panel-body' }, 'Total lag: ', h('strong', { 'data-testid': 'total-lag' }, fmt(l.total_lag)), ' messages'),
      table([
        { label: 'Topic', value: (q) => q.topic },
        { label: 'Queue', value: (q) => q.queue_id, num: true },
        { label: 'Broker offset', value: (q) => fmt(q.broker_offset), num: true },
        { label: 'Consumer offset', value: (q) => (q.committed ? fmt(q.consumer_offset) : h('span', { class: 'muted', title: 'The group never committed an offset on this queue' }, 'not committed')), num: true },
        { label: 'Lag', value: (q) => fmt(Math.max(0, q.lag)), num: true },
        { label: 'In flight', value: (q) => fmt(q.inflight), num: true },
      ], l.queues, { empty: 'The group has no offsets yet.', testid: 'lag-table' }));
    fill(chartBody, lineChart([lagSeries], { label: 'lag', testid: 'chart-lag' }), legend([lagSeries]));
    if (!topicSelect.options.length || topicSelect.options.length !== topics.length) fillTopics();
  }

  const topicSelect = h('select', { 'data-testid': 'reset-topic' });
  const fillTopics = () => {
    const v = topicSelect.value;
    fill(topicSelect, ...topics.map((t) => h('option', { value: t }, t)));
    if (topics.includes(v)) topicSelect.value = v;
  };
  const mode = h('select', { 'data-testid': 'reset-mode' },
    h('option', { value: 'timestamp' }, 'to a time'), h('option', { value: 'earliest' }, 'to the earliest message'), h('option', { value: 'latest' }, 'to the latest (skip the backlog)'));
  const when = h('input', { type: 'datetime-local', step: 1, value: toLocalInput(Date.now() - 3600 * 1000), 'data-testid': 'reset-time' });
  const preview = h('div');
  const request = (dryRun) => {
    const body = { topic: topicSelect.value, to: mode.value, dry_run: dryRun };
    if (mode.value === 'timestamp') body.timestamp_ms = localInputMs(when.value);
    return api.post(`/v1/groups/${seg(group)}/offsets/reset`, body);
  };
  const showPlan = (r, applied) => fill(preview, 
    h('div', { class: applied ? 'result' : 'muted', 'data-testid': applied ? 'reset-applied' : 'reset-preview-text' },
      applied ? `Applied: the group now has ${fmt(r.total_lag_after)} messages to consume on ${r.topic}.`
        : `Preview: after the reset the group has ${fmt(r.total_lag_after)} messages to consume on ${r.topic}.`),
    table([
      { label: 'Queue', value: (q) => q.queue_id, num: true },
      { label: 'Current offset', value: (q) => (q.current === null ? 'not committed' : fmt(q.current)), num: true },
      { label: 'New offset', value: (q) => h('strong', {}, fmt(q.target)), num: true },
      { label: 'Lag after', value: (q) => fmt(q.lag_after), num: true },
    ], r.queues, { testid: applied ? 'reset-result' : 'reset-preview' }));
  add(resetBody, 
    h('p', { class: 'muted' }, 'Works whether or not consumers are online: offsets are committed on the broker, and online consumers are told the new ones.'),
    h('div', { class: 'form-grid' }, h('label', {}, 'Topic', topicSelect), h('label', {}, 'Reset', mode), h('label', {}, 'Time (local)', when),
      h('div', { class: 'toolbar' },
        h('button', { class: 'btn', 'data-testid': 'reset-preview-button', onclick: async () => {
          try { showPlan(await request(true), false); } catch (e) { fill(preview, h('div', { class: 'result bad' }, e.message)); }
        } }, 'Preview'),
        h('button', { class: 'btn btn-primary', 'data-testid': 'reset-apply', onclick: async () => {
          if (!ctx.canWrite() || !confirm(`Move the offsets of ${group} on ${topicSelect.value}?`)) return;
          const r = await ctx.write(() => request(false), 'Offsets reset');
          if (r) { showPlan(r, true); loadLag(); }
        } }, 'Apply'))),
    preview);
  mode.addEventListener('change', () => { when.disabled = mode.value !== 'timestamp'; });

  await Promise.all([loadMembers(), loadLag()]);
  fillTopics();
  d.every(3000, () => loadLag().catch(() => {}));
}

