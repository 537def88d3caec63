/**
 * The dashboard in the browser: sign-in, the views of views.js, live refresh from Socket.IO
 * events (a burst of events causes one re-read of the open view, at most every 500 ms), and the
 * two actions (retry a dead-letter task, acknowledge an alert). Everything else is read-only.
 */
import { io } from '/ui/vendor/socket.io.esm.min.js';
import { DashboardClient, ApiError, topicsFor } from './client.js';
import { LiveStats } from './live-stats.js';
import * as V from './views.js';

const client = new DashboardClient({ baseUrl: location.origin, fetch: (...a) => fetch(...a), io });
const stats = new LiveStats();
const state = { view: 'agents', live: false, filters: {}, auditFilter: {}, pipeline: null, error: null, needsCode: false, username: '', mfa: { required: false, deadline: null, overdue: false, setup: null, error: null } };
const $ = (sel) => document.querySelector(sel);

async function load() {
  const now = Date.now();
  switch (state.view) {
    case 'agents': return V.renderAgents((await client.get('/agents', { limit: 200 })).agents, now);
    case 'tasks': {
      const r = await client.get('/tasks', { ...state.filters, limit: 100, sort: 'created_at:desc' });
      return V.renderTasks(r.tasks, state.filters, r.pagination?.total ?? r.tasks.length, now);
    }
    case 'pipelines': {
      const list = (await client.get('/pipelines', { limit: 50 })).pipelines;
      const detail = state.pipeline ? await client.get(`/pipelines/${encodeURIComponent(state.pipeline)}`).catch(() => null) : null;
      return V.renderPipelines(list, detail, now);
    }
    case 'dead-letter': return V.renderDeadLetter((await client.get('/tasks/dead-letter', { limit: 100 })).tasks, now);
    case 'audit': return V.renderAudit((await client.get('/audit', { ...state.auditFilter, limit: 100 })).entries, state.auditFilter);
    case 'alerts': return V.renderAlerts((await client.get('/security/alerts', { limit: 100 })).alerts, now);
    case 'charts': return V.renderCharts(stats.series(now));
    case 'mfa': return V.renderMfa(state.mfa);
    default: return '';
  }
}

function renderNav() {
  $('#nav').innerHTML = V.renderNav(state.view, client.user.role, client.user.username, state.live, state.mfa.required);
}

async function render() {
  if (!client.user) {
    $('#nav').innerHTML = '';
    $('#main').innerHTML = V.renderLogin(state.error, state.needsCode, state.username);
    return;
  }
  renderNav();
  try {
    $('#main').innerHTML = await load();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'MFA_REQUIRED') {
      // The grace period is over: only enrolment answers this user now.
      Object.assign(state.mfa, { required: true, overdue: true });
      state.view = 'mfa';
      return render();
    }
    if (err instanceof ApiError && (err.status === 401)) return signOut('Your session ended; sign in again.');
    $('#main').innerHTML = `<p class="error" role="alert">${V.esc(err.message)}</p>`;
  }
}

let pending = null;
function refreshSoon() {
  pending ??= setTimeout(() => { pending = null; void render(); }, 500);
}

const VIEW_EVENTS = { agents: 'agent:', tasks: 'task:', 'dead-letter': 'task:', pipelines: 'pipeline:', alerts: 'system:security_alert', charts: 'task:completed' };

function onEvent(name, payload) {
  if (name === 'task:completed') stats.record(Date.parse(payload?.timestamp ?? '') || Date.now(), payload?.duration_ms ?? null);
  const prefix = VIEW_EVENTS[state.view];
  if (prefix && name.startsWith(prefix)) refreshSoon();
}

async function signOut(message = null) {
  await client.logout();
  state.error = message;
  state.live = false;
  await render();
}

document.addEventListener('submit', async (e) => {
  const form = e.target.closest('form[data-form]');
  if (!form) return;
  e.preventDefault();
  const data = Object.fromEntries(new FormData(form).entries());
  if (form.dataset.form === 'login') {
    state.username = data.username;
    try {
      await client.login(data.username, data.password, data.totp_code || undefined);
      state.error = null;
      state.needsCode = false;
      Object.assign(state.mfa, { required: client.user.mfa_setup_required === true, deadline: client.user.mfa_setup_deadline ?? null, overdue: false, setup: null, error: null });
      client.connect(topicsFor(client.user.role), onEvent, (live) => { state.live = live; if (client.user) renderNav(); });
      state.view = location.hash.slice(1).split('/')[0] || 'agents';
    } catch (err) {
      state.needsCode = err instanceof ApiError && err.code === 'MFA_REQUIRED';
      state.error = state.needsCode ? 'Enter the code from your authenticator app.' : err instanceof ApiError && err.code === 'INVALID_CREDENTIALS' ? 'Wrong username or password.' : err.message;
    }
  } else if (form.dataset.form === 'task-filters') {
    state.filters = Object.fromEntries(Object.entries(data).filter(([, v]) => v !== ''));
  } else if (form.dataset.form === 'audit-filters') {
    state.auditFilter = data.action ? { action: data.action } : {};
  } else if (form.dataset.form === 'mfa-verify') {
    try {
      await client.post('/auth/mfa/verify', { code: data.code });
      Object.assign(state.mfa, { required: false, overdue: false, setup: null, error: null });
      state.view = 'agents';
      location.hash = '#agents';
    } catch (err) {
      state.mfa.error = err instanceof ApiError && err.status === 400 ? 'That code is not valid; try the current one.' : err.message;
    }
  }
  await render();
});

document.addEventListener('click', async (e) => {
  const el = e.target.closest('[data-action], [data-view], [data-pipeline]');
  if (!el) return;
  if (el.dataset.view) { state.view = el.dataset.view; state.pipeline = null; return; } // the hashchange renders
  if (el.dataset.pipeline) { state.pipeline = el.dataset.pipeline; return; }
  e.preventDefault();
  try {
    if (el.dataset.action === 'logout') return void (await signOut());
    if (el.dataset.action === 'retry') await client.post(`/tasks/${encodeURIComponent(el.dataset.task)}/retry`);
    if (el.dataset.action === 'ack') await client.post(`/security/alerts/${encodeURIComponent(el.dataset.alert)}/ack`);
    if (el.dataset.action === 'mfa-start') state.mfa.setup = await client.post('/auth/mfa/setup');
  } catch (err) {
    alert(err.message);
  }
  await render();
});

window.addEventListener('hashchange', () => {
  const [view, id] = location.hash.slice(1).split('/');
  if (view) state.view = view;
  state.pipeline = view === 'pipelines' && id ? id : null;
  void render();
});

setInterval(() => { if (client.user && state.view === 'charts') void render(); }, 5000);
void render();
