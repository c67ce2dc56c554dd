// The console's shell: hash routing between pages, the login session, live polling of the
// cluster figures (kept across pages so the charts have history), and the write guard.

import { api, ApiError } from './api.js';
import { Series } from './chart.js';
import { add, fill, clear, closeDrawer, h, toast } from './ui.js';
import * as cluster from './pages/cluster.js';
import * as topics from './pages/topics.js';
import * as groups from './pages/groups.js';
import * as messages from './pages/messages.js';
import * as plugins from './pages/plugins.js';
import * as amqp from './pages/amqp.js';

const PAGES = {
  cluster: { title: 'Cluster', module: cluster },
  topics: { title: 'Topics', module: topics },
  groups: { title: 'Consumer groups', module: groups },
  messages: { title: 'Messages', module: messages },
  plugins: { title: 'Plugins', module: plugins },
  amqp: { title: 'AMQP', module: amqp },
};

/** How often the cluster figures are polled, ms. */
const POLL_MS = 2000;

const state = {
  session: { login_required: false, logged_in: false, can_write: true, user_configured: false },
  overview: null,
  series: {
    tpsIn: new Series('in', '#2563eb'),
    tpsOut: new Series('out', '#16a34a'),
  },
  lastTotals: null,
  timers: [],
  listeners: new Set(),
};

const ctx = {
  state,
  /** Runs `f` every `ms` while the current page is shown. */
  every(ms, f) { state.timers.push(setInterval(f, ms)); },
  /** Calls `f` after each poll of the cluster figures while the current page is shown. */
  onTick(f) { state.listeners.add(f); },
  /** True when writes are allowed; otherwise explains why (login dialog or banner). */
  canWrite() {
    if (state.session.can_write) return true;
    if (state.session.user_configured) openLogin();
    else toast('Writes are disabled: no console user is configured (see the banner).', 'bad');
    return false;
  },
  /** Runs a write; on 401 asks to log in. Returns the answer or undefined. */
  async write(f, okText) {
    if (!ctx.canWrite()) return undefined;
    try {
      const r = await f();
      if (okText) toast(okText, 'ok');
      return r;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        await loadSession();
        if (state.session.user_configured) openLogin();
      }
      toast(e.message, 'bad');
      return undefined;
    }
  },
};

async function poll() {
  try {
    const o = await api.get('/v1/cluster/overview');
    state.overview = o;
    const now = Date.now();
    const totals = o.brokers.reduce((a, b) => ({
      in: a.in + (b.messages_in_total || 0), out: a.out + (b.messages_out_total || 0),
    }), { in: 0, out: 0 });
    if (state.lastTotals) {
      const dt = (now - state.lastTotals.t) / 1000;
      if (dt > 0) {
        state.series.tpsIn.push(now, Math.max(0, (totals.in - state.lastTotals.in) / dt));
        state.series.tpsOut.push(now, Math.max(0, (totals.out - state.lastTotals.out) / dt));
      }
    }
    state.lastTotals = { ...totals, t: now };
    const first = o.brokers[0];
    if (first) document.getElementById('brand-cluster').textContent = `${first.cluster} · ${o.brokers.length} broker${o.brokers.length === 1 ? '' : 's'}`;
    setLive(true);
  } catch (e) {
    setLive(false, e.message);
  }
  for (const f of state.listeners) {
    try { f(); } catch (e) { console.error(e); }
  }
}

function setLive(ok, why) {
  document.getElementById('live-dot').className = `live-dot ${ok ? 'ok' : 'bad'}`;
  document.getElementById('live-text').textContent = ok ? `live · every ${POLL_MS / 1000}s` : `offline: ${why || ''}`;
}

async function loadSession() {
  try {
    state.session = await api.get('/v1/session');
  } catch {
    state.session = { login_required: false, logged_in: false, can_write: true };
  }
  renderSession();
}

function renderSession() {
  const s = state.session;
  const el = document.getElementById('session-state');
  clear(el);
  const login = document.getElementById('login-button');
  const logout = document.getElementById('logout-button');
  login.hidden = !(s.login_required && !s.logged_in && s.user_configured);
  logout.hidden = !s.logged_in;
  if (!s.login_required) add(el, 'Login off (loopback door)');
  else if (s.logged_in) add(el, 'Signed in as ', h('strong', {}, s.user));
  else add(el, h('span', { class: 'pill warn' }, 'read-only'));
  const banner = document.getElementById('banner');
  if (s.login_required && !s.user_configured) {
    banner.hidden = false;
    fill(banner, 
      h('strong', {}, 'Writes are disabled. '),
      'Login is on because the HTTP door listens on a non-loopback address, and no console user is configured: ',
      s.hint || 'set dashboardUser and dashboardPasswordHash in broker.properties.');
  } else {
    banner.hidden = true;
  }
}

function openLogin() {
  const d = document.getElementById('login-dialog');
  document.getElementById('login-error').hidden = true;
  if (!d.open) d.showModal();
}

async function submitLogin(e) {
  e.preventDefault();
  const form = e.target;
  const err = document.getElementById('login-error');
  try {
    await api.post('/v1/session', { user: form.user.value, password: form.password.value });
    document.getElementById('login-dialog').close();
    form.reset();
    await loadSession();
    toast(`Signed in as ${state.session.user}`, 'ok');
    route();
  } catch (x) {
    err.textContent = x.message;
    err.hidden = false;
  }
}

async function logout() {
  await api.del('/v1/session').catch(() => {});
  await loadSession();
  route();
}

let current = null;

async function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'cluster').split('/');
  const page = PAGES[name] ? name : 'cluster';
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.listeners.clear();
  closeDrawer();
  current = page;
  document.getElementById('page-title').textContent = PAGES[page].title;
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === page));
  const view = clear(document.getElementById('view'));
  view.dataset.page = page;
  view.dataset.ready = 'false';
  try {
    await PAGES[page].module.render(view, ctx, rest.map(decodeURIComponent));
  } catch (e) {
    add(view, h('div', { class: 'result bad' }, `This page failed to load: ${e.message}`));
  }
  if (current === page) view.dataset.ready = 'true';
}

document.getElementById('login-form').addEventListener('submit', submitLogin);
document.getElementById('login-cancel').addEventListener('click', () => document.getElementById('login-dialog').close());
document.getElementById('login-button').addEventListener('click', openLogin);
document.getElementById('logout-button').addEventListener('click', logout);
window.addEventListener('hashchange', route);

await loadSession();
await poll();
setInterval(poll, POLL_MS);
route();
