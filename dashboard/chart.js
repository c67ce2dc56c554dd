// Small line charts in inline SVG (no chart library), and the rolling series they draw.

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** Points kept per series: 10 minutes at one point every 2 s. */
export const POINTS_MAX = 300;

/** A rolling series of [time ms, value] points. */
export class Series {
  constructor(name, color) {
    this.name = name;
    this.color = color;
    this.points = [];
  }

  push(t, v) {
    if (v === null || v === undefined || Number.isNaN(v)) return;
    this.points.push([t, v]);
    if (this.points.length > POINTS_MAX) this.points.shift();
  }

  last() {
    return this.points.length ? this.points[this.points.length - 1][1] : null;
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function short(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  return String(Math.round(v * 10) / 10);
}

/**
 * Draws the series into an <svg> over the last `windowMs`: light grid, y labels, one line and a
 * soft area per series.
 */
export function lineChart(series, opts = {}) {
  const width = 600;
  const height = 150;
  const pad = { l: 44, r: 10, t: 10, b: 20 };
  const now = Date.now();
  // The last `windowMs` (5 minutes), or less while the history is younger (at least 1 minute).
  const first = Math.min(now, ...series.map((x) => (x.points.length ? x.points[0][0] : now)));
  const windowMs = Math.min(opts.windowMs || 5 * 60 * 1000, Math.max(60 * 1000, now - first));
  const from = now - windowMs;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': opts.label || 'chart' });
  if (opts.testid) svg.setAttribute('data-testid', opts.testid);
  const visible = series.map((x) => x.points.filter(([t]) => t >= from));
  const max = niceMax(Math.max(0, ...visible.flat().map(([, v]) => v)));
  const x = (t) => pad.l + ((t - from) / windowMs) * (width - pad.l - pad.r);
  const y = (v) => pad.t + (1 - v / max) * (height - pad.t - pad.b);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.appendChild(s('line', { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), stroke: '#eef2f7', 'stroke-width': 1, 'vector-effect': 'non-scaling-stroke' }));
    const label = s('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#94a3b8' });
    label.textContent = short(v);
    svg.appendChild(label);
  }
  const span = windowMs >= 120 * 1000 ? `-${Math.round(windowMs / 60000)} min` : `-${Math.round(windowMs / 1000)} s`;
  for (const [label, atEnd] of [[span, false], ['now', true]]) {
    const tx = s('text', { x: atEnd ? width - pad.r : pad.l, y: height - 4, 'text-anchor': atEnd ? 'end' : 'start', 'font-size': 10, fill: '#94a3b8' });
    tx.textContent = label;
    svg.appendChild(tx);
  }
  visible.forEach((pts, i) => {
    if (!pts.length) return;
    const color = series[i].color;
    const line = pts.map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    const area = `${line} L${x(pts[pts.length - 1][0]).toFixed(1)},${y(0)} L${x(pts[0][0]).toFixed(1)},${y(0)} Z`;
    svg.appendChild(s('path', { d: area, fill: color, 'fill-opacity': 0.08, stroke: 'none' }));
    svg.appendChild(s('path', { d: line, fill: 'none', stroke: color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', 'stroke-linejoin': 'round' }));
    const [lt, lv] = pts[pts.length - 1];
    svg.appendChild(s('ellipse', { cx: x(lt), cy: y(lv), rx: 3, ry: 3, fill: color }));
  });
  if (!visible.some((p) => p.length)) {
    const t = s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', 'font-size': 12, fill: '#94a3b8' });
    t.textContent = 'collecting…';
    svg.appendChild(t);
  }
  return svg;
}

/** A legend for the series, with their latest values. */
export function legend(series, unit) {
  const div = document.createElement('div');
  div.className = 'chart-legend';
  for (const x of series) {
    const span = document.createElement('span');
    const i = document.createElement('i');
    i.style.background = x.color;
    span.appendChild(i);
    const v = x.last();
    span.appendChild(document.createTextNode(`${x.name}${v === null ? '' : `: ${short(v)}${unit || ''}`}`));
    div.appendChild(span);
  }
  return div;
}
