// Small DOM helpers shared by the pages: an element builder, tables, a drawer, toasts,
// a pager and number/time formatting. Text always goes in as text nodes (no HTML injection).

/** h('div', {class: 'x', onclick: f}, child, 'text', [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Appends children (nodes, text, arrays; null and false are skipped). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A panel with a title, optional header actions, and a body. */
export function panel(title, actions, body, opts = {}) {
  return h('section', { class: 'panel', 'data-testid': opts.testid },
    h('div', { class: 'panel-head' }, h('h2', {}, title), h('div', { class: 'toolbar' }, actions || [])),
    h('div', { class: opts.flush ? 'panel-body flush' : 'panel-body' }, body));
}

/**
 * A table: columns are {label, value(row) -> node|text, num?: true}; rows an array.
 * opts.rowAttrs(row) adds attributes to each <tr>.
 */
export function table(columns, rows, opts = {}) {
  if (!rows.length) return h('div', { class: 'empty', 'data-testid': opts.testid }, opts.empty || 'Nothing to show.');
  return h('div', { class: 'table-wrap' },
    h('table', { 'data-testid': opts.testid },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : undefined }, c.label)))),
      h('tbody', {}, rows.map((r) => h('tr', opts.rowAttrs ? opts.rowAttrs(r) : {},
        columns.map((c) => h('td', { class: [c.num ? 'num' : '', c.wrap ? 'wrap' : ''].join(' ').trim() || undefined }, c.value(r))))))));
}

export function card(label, value, sub, testid) {
  return h('div', { class: 'card', 'data-testid': testid },
    h('div', { class: 'card-label' }, label),
    h('div', { class: 'card-value' }, value),
    sub ? h('div', { class: 'card-sub' }, sub) : null);
}

export function pill(text, kind) {
  return h('span', { class: `pill ${kind || ''}`.trim() }, text);
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

let openDrawer = null;

/** Opens a side drawer; returns {body, close}. */
export function drawer(title, testid) {
  closeDrawer();
  const body = h('div', { class: 'drawer-body' });
  const closeBtn = h('button', { class: 'btn', onclick: () => closeDrawer(), 'data-testid': 'drawer-close' }, 'Close');
  const backdrop = h('div', { class: 'drawer-backdrop', onclick: (e) => { if (e.target === backdrop) closeDrawer(); } },
    h('div', { class: 'drawer', 'data-testid': testid },
      h('div', { class: 'drawer-head' }, h('h2', {}, title), closeBtn), body));
  document.body.appendChild(backdrop);
  openDrawer = { backdrop, timers: [] };
  return { body, every: (ms, f) => openDrawer?.timers.push(setInterval(f, ms)) };
}

export function closeDrawer() {
  if (!openDrawer) return;
  openDrawer.timers.forEach(clearInterval);
  openDrawer.backdrop.remove();
  openDrawer = null;
}

document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDrawer(); });

/** Toasts shown at once (the oldest goes first). */
const TOASTS_MAX = 2;

export function toast(text, kind) {
  const t = h('div', { class: `toast ${kind || ''}`.trim(), role: 'status' }, text);
  const box = document.getElementById('toasts');
  box.appendChild(t);
  while (box.children.length > TOASTS_MAX) box.firstChild.remove();
  setTimeout(() => t.remove(), kind === 'bad' ? 6000 : 2500);
}

/** A pager: "1–50 of 2,003" with previous/next. */
export function pager(offset, limit, total, go) {
  const from = total ? offset + 1 : 0;
  const to = Math.min(offset + limit, total);
  return h('div', { class: 'pager', 'data-testid': 'pager' },
    h('span', { 'data-testid': 'pager-text' }, `${fmt(from)}–${fmt(to)} of ${fmt(total)}`),
    h('div', { class: 'btns' },
      h('button', { class: 'btn btn-small', disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)), 'data-testid': 'pager-prev' }, 'Previous'),
      h('button', { class: 'btn btn-small', disabled: offset + limit >= total, onclick: () => go(offset + limit), 'data-testid': 'pager-next' }, 'Next')));
}

const nf = new Intl.NumberFormat('en-US');
export const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : nf.format(n));
export const fmt1 = (n) => (n === null || n === undefined ? '—' : nf.format(Math.round(n * 10) / 10));

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function time(t) {
  if (!t) return '—';
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function duration(ms) {
  if (!ms || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  return `${mm}m ${s % 60}s`;
}

export function perm(p) {
  return `${p & 4 ? 'R' : '-'}${p & 2 ? 'W' : '-'}${p & 1 ? 'X' : '-'}`;
}

/** A debounced function. */
export function debounce(f, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
}

/** A value from a datetime-local input as ms since the epoch (local time). */
export function localInputMs(value) {
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? null : t;
}

/** ms since the epoch as a datetime-local input value. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
