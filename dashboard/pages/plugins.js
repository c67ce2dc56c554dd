// Plugins: deployed Wasm components, their bindings, counters and logs; upload and bind.

import { api, seg } from '../api.js';
import { add, fill, bytes, clear, drawer, fmt, h, kv, panel, pill, table, time } from '../ui.js';

export async function render(root, ctx) {
  const listBody = h('div');
  const bindingsBody = h('div');
  add(root, uploadPanel(ctx, () => load()), panel('Deployed plugins', null, listBody, { flush: true, testid: 'plugins' }),
    panel('Bindings', null, bindingsBody, { flush: true, testid: 'bindings' }));

  async function load() {
    let all;
    try {
      all = await api.get('/v1/plugins');
    } catch (e) {
      fill(listBody, h('div', { class: 'empty' }, e.message));
      return;
    }
    fill(listBody, table([
      { label: 'Name', value: (p) => h('a', { href: '#', 'data-testid': 'plugin-link', onclick: (e) => { e.preventDefault(); details(p.name, ctx, load); } }, p.name) },
      { label: 'Role', value: (p) => pill(p.role, 'info') },
      { label: 'Version', value: (p) => p.version, num: true },
      { label: 'Size', value: (p) => bytes(p.wasmBytes), num: true },
      { label: 'Deployed', value: (p) => time(p.deployedMs) },
      { label: 'Health', value: (p) => (p.quarantined ? pill('quarantined', 'bad') : pill('healthy', 'ok')) },
    ], all.plugins, { empty: 'No plugin deployed. Upload a .wasm component above.', testid: 'plugins-table', rowAttrs: (p) => ({ 'data-plugin': p.name }) }));
    fill(bindingsBody, bindingTable(all.bindings, ctx, load));
  }
  await load();
}

function bindingTable(bindings, ctx, reload) {
  return table([
    { label: 'Plugin', value: (b) => b.plugin },
    { label: 'Role', value: (b) => b.role },
    { label: 'Group', value: (b) => b.group || '—' },
    { label: 'Topic', value: (b) => b.topic || '—' },
    { label: 'On failure', value: (b) => (b.failOpen ? 'deliver (fail open)' : 'hold (fail closed)') },
    { label: '', value: (b) => h('button', { class: 'btn btn-small btn-danger', onclick: async () => {
      const spec = { role: b.role, group: b.group || undefined, topic: b.topic || undefined };
      if (await ctx.write(() => api.del(`/v1/plugins/${seg(b.plugin)}/bindings`, spec), 'Binding removed') !== undefined) reload();
    } }, 'Unbind') },
  ], bindings, { empty: 'No binding.', testid: 'bindings-table' });
}

function uploadPanel(ctx, reload) {
  const name = h('input', { placeholder: 'eu_only', 'data-testid': 'upload-name', required: true });
  const role = h('select', { 'data-testid': 'upload-role' }, ['filter', 'router', 'transaction-checker'].map((r) => h('option', { value: r }, r)));
  const file = h('input', { type: 'file', accept: '.wasm,application/wasm', 'data-testid': 'upload-file', required: true });
  const params = h('textarea', { placeholder: 'field=order.region\nequals=eu', 'data-testid': 'upload-params' });
  const result = h('div');
  const form = h('form', { onsubmit: async (e) => {
    e.preventDefault();
    if (!file.files.length) return;
    const q = new URLSearchParams({ role: role.value });
    for (const line of params.value.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) q.set(`param.${line.slice(0, i).trim()}`, line.slice(i + 1).trim());
    }
    const bytesOf = await file.files[0].arrayBuffer();
    const r = await ctx.write(() => api.put(`/v1/plugins/${seg(name.value.trim())}?${q}`, bytesOf, { contentType: 'application/wasm' }), 'Plugin deployed');
    if (r) {
      fill(result, h('div', { class: 'result', 'data-testid': 'upload-result' }, `Deployed ${r.name} version ${r.version} (${r.role}).`));
      reload();
    }
  } }, h('div', { class: 'form-grid' }, h('label', {}, 'Name', name), h('label', {}, 'Role', role), h('label', {}, 'Component (.wasm)', file)),
  h('label', {}, 'Parameters (name=value per line)', params),
  h('div', { class: 'toolbar' }, h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'upload-submit' }, 'Upload and deploy')), result);
  return panel('Upload a plugin', null, form, { testid: 'upload' });
}

async function details(name, ctx, reload) {
  const d = drawer(`Plugin ${name}`, 'plugin-detail');
  const info = await api.get(`/v1/plugins/${seg(name)}`);
  const s = info.summary || {};
  const c = info.counters || {};
  const bindRole = h('select', { 'data-testid': 'bind-role' }, ['filter', 'router', 'transaction-checker'].map((r) => h('option', { value: r, selected: r === s.role }, r)));
  const group = h('input', { placeholder: 'group (filters, checkers)', 'data-testid': 'bind-group' });
  const topic = h('input', { placeholder: 'topic (filters, routers)', 'data-testid': 'bind-topic' });
  const failOpen = h('input', { type: 'checkbox' });
  const bindingsBody = h('div');
  const drawBindings = (list) => fill(bindingsBody, bindingTable(list, ctx, async () => {
    drawBindings((await api.get(`/v1/plugins/${seg(name)}`)).bindings);
    reload();
  }));
  drawBindings(info.bindings || []);
  const counters = Object.entries(c).filter(([, v]) => typeof v === 'number');
  let logText = 'No log lines.';
  try {
    const l = await api.get(`/v1/plugins/${seg(name)}/logs`);
    if (l.lines.length) logText = l.lines.map((x) => `${time(x.timeMs)} ${x.level.padEnd(5)} [${x.source}] ${x.message}`).join('\n');
  } catch (e) {
    logText = e.message;
  }
  add(d.body, 
    panel('Overview', null, kv([
      ['Role', s.role], ['Version', s.version], ['Size', bytes(s.wasmBytes)], ['Deployed', time(s.deployedMs)],
      ['Parameters', (s.params || []).map(([k, v]) => `${k}=${v}`).join(', ') || '—'],
      ['State', s.quarantined ? pill('quarantined', 'bad') : pill('healthy', 'ok')],
    ])),
    panel('Counters', null, table([
      { label: 'Counter', value: ([k]) => k },
      { label: 'Value', value: ([, v]) => fmt(v), num: true },
    ], counters, { empty: 'No counters yet.', testid: 'counters-table' }), { flush: true }),
    panel('Bindings', null, [bindingsBody, h('form', { class: 'panel-body', onsubmit: async (e) => {
      e.preventDefault();
      const spec = { role: bindRole.value, group: group.value.trim() || undefined, topic: topic.value.trim() || undefined, fail_open: failOpen.checked };
      if (await ctx.write(() => api.post(`/v1/plugins/${seg(name)}/bindings`, spec), 'Plugin bound')) {
        drawBindings((await api.get(`/v1/plugins/${seg(name)}`)).bindings);
        reload();
      }
    } }, h('div', { class: 'form-grid' }, h('label', {}, 'Role', bindRole), h('label', {}, 'Group', group), h('label', {}, 'Topic', topic),
      h('label', { class: 'check' }, failOpen, 'fail open'),
      h('div', {}, h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'bind-submit' }, 'Bind'))))], { flush: true, testid: 'plugin-bindings' }),
    panel('Log', null, h('pre', { class: 'log', 'data-testid': 'plugin-log' }, logText)),
    h('div', { class: 'toolbar' }, h('button', { class: 'btn btn-danger', onclick: async () => {
      if (!ctx.canWrite() || !confirm(`Remove plugin ${name}? (refused while it is bound)`)) return;
      if (await ctx.write(() => api.del(`/v1/plugins/${seg(name)}`), `Plugin ${name} removed`) !== undefined) { d.body.closest('.drawer-backdrop')?.remove(); reload(); }
    } }, 'Remove plugin')));
}
