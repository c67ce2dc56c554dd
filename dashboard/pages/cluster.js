// Cluster: name servers, brokers (role, address, version, disk, HA lag, TPS) and live charts.

import { legend, lineChart } from '../chart.js';
import { add, fill, bytes, card, clear, duration, fmt, fmt1, h, kv, panel, pill, table } from '../ui.js';

export async function render(root, ctx) {
  const cards = h('div', { class: 'cards' });
  const chartBody = h('div');
  const brokersBody = h('div');
  const nsBody = h('div');
  add(root, 
    cards,
    h('div', { class: 'grid-2' },
      h('section', { class: 'panel chart-panel' },
        h('div', { class: 'panel-head' }, h('h2', {}, 'Throughput (messages/s, up to the last 5 minutes)')),
        h('div', { class: 'panel-body' }, chartBody)),
      panel('Name servers', null, nsBody)),
    panel('Brokers', null, brokersBody, { flush: true, testid: 'brokers' }));

  const draw = () => {
    const o = ctx.state.overview;
    if (!o) return;
    const s = ctx.state.series;
    const brokers = o.brokers;
    const masters = brokers.filter((b) => b.broker_id === 0).length;
    const maxDisk = Math.max(0, ...brokers.map((b) => b.disk_ratio || 0));
    const maxLag = Math.max(0, ...brokers.map((b) => b.ha_lag_bytes || 0));
    fill(cards, 
      card('Brokers', fmt(brokers.length), `${masters} master${masters === 1 ? '' : 's'}, ${brokers.length - masters} slave${brokers.length - masters === 1 ? '' : 's'}`, 'card-brokers'),
      card('Messages in / s', fmt1(s.tpsIn.last() ?? 0), 'all brokers, measured', 'card-tps-in'),
      card('Messages out / s', fmt1(s.tpsOut.last() ?? 0), 'all brokers, measured', 'card-tps-out'),
      card('Highest disk use', `${Math.round(maxDisk * 100)}%`, 'CommitLog disk', 'card-disk'),
      card('Largest HA lag', bytes(maxLag), 'bytes a slave is behind', 'card-ha'));
    fill(chartBody, lineChart([s.tpsIn, s.tpsOut], { label: 'throughput', testid: 'chart-tps' }), legend([s.tpsIn, s.tpsOut], '/s'));
    fill(nsBody, 
      o.name_servers.length
        ? h('ul', { class: 'plain', 'data-testid': 'name-servers' }, o.name_servers.map((n) => h('li', {}, h('code', {}, n), ' ', o.name_server_error ? pill('not answering', 'bad') : pill('answering', 'ok'))))
        : h('p', { class: 'muted' }, 'This broker has no name server configured (namesrvAddr).'),
      o.name_server_error ? h('p', { class: 'form-error' }, o.name_server_error) : null,
      h('h3', { class: 'spaced' }, 'Clusters'),
      kv(Object.entries(brokers.reduce((acc, b) => {
        (acc[b.cluster] ||= new Set()).add(b.broker_name);
        return acc;
      }, {})).map(([c, names]) => [c, `${names.size} broker pair${names.size === 1 ? '' : 's'}: ${[...names].join(', ')}`])));
    fill(brokersBody, table([
      { label: 'Cluster', value: (b) => b.cluster },
      { label: 'Broker', value: (b) => h('strong', {}, b.broker_name) },
      { label: 'Role', value: (b) => pill(b.role === 'MASTER' ? `master · ${b.broker_id}` : `slave · ${b.broker_id}`, b.role === 'MASTER' ? 'info' : '') },
      { label: 'Address', value: (b) => h('code', {}, b.addr) },
      { label: 'Version', value: (b) => b.version || '—' },
      { label: 'Disk', value: (b) => diskBar(b.disk_ratio) },
      { label: 'HA lag', value: (b) => (b.ha_lag_bytes === null || b.ha_lag_bytes === undefined ? '—' : bytes(b.ha_lag_bytes)), num: true },
      { label: 'TPS in', value: (b) => fmt1(b.put_tps), num: true },
      { label: 'TPS out', value: (b) => fmt1(b.get_tps), num: true },
      { label: 'Messages in', value: (b) => fmt(b.messages_in_total), num: true },
      { label: 'Up', value: (b) => (b.boot_timestamp_ms ? duration(Date.now() - b.boot_timestamp_ms) : '—') },
      { label: 'State', value: (b) => (b.error ? pill('unreachable', 'bad') : pill('online', 'ok')) },
    ], o.brokers, { testid: 'brokers-table', rowAttrs: (b) => ({ 'data-broker': b.broker_name }) }));
  };
  draw();
  ctx.onTick(draw);
}

function diskBar(ratio) {
  if (ratio === null || ratio === undefined || ratio < 0) return '—';
  const pct = Math.round(ratio * 100);
  const kind = pct >= 85 ? 'bad' : pct >= 75 ? 'warn' : '';
  const bar = h('span', { class: `bar ${kind}`.trim() }, h('i'));
  bar.firstChild.style.width = `${Math.min(100, pct)}%`;
  return h('span', {}, bar, `${pct}%`);
}
