/**
 * The dashboard's views: pure functions from data to HTML strings. Every value that comes from
 * the server goes through `esc` (task types, agent names, error codes… may hold anything), so a
 * view cannot inject markup; the page's CSP (script-src 'self') is the second line.
 * Buttons carry `data-action` and ids in `data-*` attributes; app.js handles them by delegation.
 */

/** HTML-escapes any value (null/undefined → ''). */
export function esc(value) {
  if (value === null || value === undefined) return '';
  return String(value).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** "3 s ago", "5 min ago", "2 h ago", "4 d ago"; '—' without a time. */
export function ago(iso, nowMs) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A progress bar for a fraction 0..1 (clamped). */
export function bar(fraction, label = '') {
  const pct = Math.round(Math.min(1, Math.max(0, Number(fraction) || 0)) * 100);
  return `<div class="bar" role="progressbar" aria-valuenow="${pct}" aria-valuemin="0" aria-valuemax="100" title="${esc(label)}"><span style="width:${pct}%"></span><em>${pct}%</em></div>`;
}

const badge = (status) => `<span class="badge s-${esc(String(status).replace(/[^a-z_]/g, ''))}">${esc(status)}</span>`;

function table(headers, rows, empty) {
  if (!rows.length) return `<p class="empty">${esc(empty)}</p>`;
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

/**
 * Which views a role may open (mirrors the RBAC table: the server refuses the rest anyway), and
 * MFA enrolment while the user's role requires it and they have not enrolled.
 */
export function viewsFor(role, mfaRequired = false) {
  const views = ['agents', 'tasks', 'charts'];
  if (role !== 'worker') views.splice(2, 0, 'pipelines', 'dead-letter');
  if (role === 'admin' || role === 'system') views.push('audit', 'alerts');
  if (mfaRequired) views.push('mfa');
  return views;
}

const TITLES = { agents: 'Agents', tasks: 'Task queue', pipelines: 'Pipelines', 'dead-letter': 'Dead letter', audit: 'Audit log', alerts: 'Security alerts', charts: 'Throughput & latency', mfa: 'Set up MFA' };

export function renderNav(active, role, user, live, mfaRequired = false) {
  const tabs = viewsFor(role, mfaRequired).map((v) => `<a href="#${v}" class="${v === active ? 'active' : ''}" data-view="${v}">${esc(TITLES[v])}</a>`).join('');
  return `<nav>${tabs}</nav><div class="who">${esc(user)} · ${esc(role)} · <span class="live ${live ? 'on' : 'off'}">${live ? 'live' : 'offline'}</span> <button data-action="logout">Sign out</button></div>`;
}

/** The sign-in form; after a refusal it keeps the username (never the password). */
export function renderLogin(error, needsCode, username = '') {
  return `<form class="login" data-form="login">
    <h1>MCP Server</h1>
    <label>Username <input name="username" autocomplete="username" value="${esc(username)}" required></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
    <label class="${needsCode ? '' : 'optional'}">MFA code <input name="totp_code" inputmode="numeric" autocomplete="one-time-code"></label>
    <button type="submit">Sign in</button>
    ${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
  </form>`;
}

export function renderAgents(agents, nowMs) {
  const rows = agents.map((a) => [
    `<code>${esc(a.agent_id)}</code>${a.builtin ? ' <span class="tag">built-in</span>' : ''}`,
    esc(a.name), esc(a.type), `${badge(a.status)}${a.draining ? ' <span class="tag">draining</span>' : ''}`,
    esc(a.capabilities.join(', ')),
    `${esc(a.load)} / ${esc(a.max_concurrent_tasks)}`,
    esc(Number(a.score).toFixed(2)), esc(ago(a.last_heartbeat, nowMs)),
  ]);
  const active = agents.filter((a) => a.status === 'active').length;
  return `<h2>Agents <small>${active} active of ${agents.length}</small></h2>${table(['Agent', 'Name', 'Type', 'Status', 'Capabilities', 'Load', 'Score', 'Heartbeat'], rows, 'No agents registered.')}`;
}

export const TASK_STATUSES = ['pending', 'assigned', 'running', 'completed', 'failed', 'retrying', 'timeout', 'cancelled'];

export function renderTasks(tasks, filters, total, nowMs) {
  const opt = (v, cur) => `<option value="${esc(v)}"${v === cur ? ' selected' : ''}>${esc(v || 'any')}</option>`;
  const form = `<form class="filters" data-form="task-filters">
    <label>Status <select name="status">${['', ...TASK_STATUSES].map((s) => opt(s, filters.status ?? '')).join('')}</select></label>
    <label>Type <input name="task_type" value="${esc(filters.task_type ?? '')}" placeholder="any"></label>
    <label>Agent <input name="agent_id" value="${esc(filters.agent_id ?? '')}" placeholder="any"></label>
    <button type="submit">Filter</button></form>`;
  const rows = tasks.map((t) => [
    `<code title="${esc(t.task_id)}">${esc(t.task_id.slice(-12))}</code>`, esc(t.task_type), badge(t.status), esc(t.priority),
    esc(t.assigned_agent ?? '—'), esc(t.attempt), bar(t.progress), esc(ago(t.created_at, nowMs)),
  ]);
  return `<h2>Task queue <small>${esc(total)} matching</small></h2>${form}${table(['Task', 'Type', 'Status', 'Priority', 'Agent', 'Attempt', 'Progress', 'Created'], rows, 'No tasks match.')}`;
}

export function renderPipelines(pipelines, detail, nowMs) {
  const rows = pipelines.map((p) => [
    `<a href="#pipelines/${esc(p.pipeline_id)}" data-pipeline="${esc(p.pipeline_id)}"><code>${esc(p.pipeline_id.slice(-12))}</code></a>`,
    esc(p.template), badge(p.status), bar(p.progress), esc(ago(p.created_at, nowMs)),
  ]);
  let stages = '';
  if (detail) {
    stages = `<section class="detail"><h3>${esc(detail.name)} <code>${esc(detail.pipeline_id)}</code> ${badge(detail.status)}</h3>
      ${table(['Stage', 'Status', 'Progress', 'Runs', 'Started', 'Completed'], detail.stages.map((s) => [
        esc(s.name || s.stage), badge(s.status), bar(s.progress, s.stage), esc(s.runs), esc(ago(s.started_at, nowMs)), esc(ago(s.completed_at, nowMs)),
      ]), 'No stages.')}</section>`;
  }
  return `<h2>Pipelines</h2>${table(['Run', 'Template', 'Status', 'Progress', 'Created'], rows, 'No pipeline runs.')}${stages}`;
}

export function renderDeadLetter(tasks, nowMs) {
  const rows = tasks.map((t) => [
    `<code title="${esc(t.task_id)}">${esc(t.task_id.slice(-12))}</code>`, esc(t.task_type), esc(t.error?.code ?? '—'), esc(t.attempt),
    esc(ago(t.updated_at, nowMs)), `<button data-action="retry" data-task="${esc(t.task_id)}">Retry</button>`,
  ]);
  return `<h2>Dead letter <small>${tasks.length}</small></h2>${table(['Task', 'Type', 'Error', 'Attempts', 'Failed', ''], rows, 'Nothing in the dead-letter queue.')}`;
}

export function renderAudit(entries, filter) {
  const form = `<form class="filters" data-form="audit-filters"><label>Action <input name="action" value="${esc(filter.action ?? '')}" placeholder="any"></label><button type="submit">Filter</button></form>`;
  const rows = entries.map((e) => [
    esc(e.timestamp), esc(e.action), esc(`${e.actor?.type ?? ''}:${e.actor?.id ?? '—'}`), esc(`${e.resource_type}${e.resource_id ? ` ${e.resource_id}` : ''}`),
    esc((e.fields ?? []).join(', ')), badge(e.outcome), esc(e.risk_level),
  ]);
  return `<h2>Audit log</h2>${form}${table(['Time', 'Action', 'Actor', 'Resource', 'Fields', 'Outcome', 'Risk'], rows, 'No entries.')}`;
}

export function renderAlerts(alerts, nowMs) {
  const rows = alerts.map((a) => [
    badge(a.severity), esc(a.rule), esc(a.message), esc(ago(a.created_at, nowMs)),
    a.acknowledged_at ? `acknowledged by ${esc(a.acknowledged_by)}` : `<button data-action="ack" data-alert="${esc(a.alert_id)}">Acknowledge</button>`,
  ]);
  return `<h2>Security alerts</h2>${table(['Severity', 'Rule', 'Message', 'Raised', ''], rows, 'No alerts.')}`;
}

/** An SVG polyline chart of `values` (nulls skipped) with its maximum on the axis. */
export function sparkline(values, { width = 600, height = 120, label = '' } = {}) {
  const known = values.map((v, i) => [i, v]).filter(([, v]) => typeof v === 'number');
  const max = Math.max(1, ...known.map(([, v]) => v));
  const x = (i) => (values.length <= 1 ? 0 : (i / (values.length - 1)) * width);
  const y = (v) => height - (v / max) * (height - 10);
  const points = known.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(label)}"><polyline points="${points}" fill="none" stroke="currentColor" stroke-width="2"/><text x="4" y="12">${esc(`${label} (max ${Math.round(max)})`)}</text></svg>`;
}

export function renderCharts(series) {
  const total = series.reduce((n, p) => n + p.count, 0);
  return `<h2>Throughput & latency <small>last ${series.length * 10} s, from live task:completed events · ${total} completed</small></h2>
    ${sparkline(series.map((p) => p.perMin), { label: 'tasks / min' })}
    ${sparkline(series.map((p) => p.p50), { label: 'p50 duration ms' })}
    ${sparkline(series.map((p) => p.p95), { label: 'p95 duration ms' })}`;
}

/**
 * MFA enrolment (SPEC §4.1): start → the secret, its otpauth:// URL and the recovery codes (shown
 * once) → a code from the app turns MFA on. `overdue`: the grace period is over, nothing else answers.
 */
export function renderMfa({ setup, deadline, overdue, error }) {
  const why = overdue
    ? '<p class="error" role="alert">Your role requires MFA and its grace period is over: set it up to continue.</p>'
    : `<p>Your role requires MFA${deadline ? ` by ${esc(deadline)}` : ''}.</p>`;
  if (!setup) return `<h2>Set up MFA</h2>${why}<button data-action="mfa-start">Start</button>${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}`;
  return `<h2>Set up MFA</h2>${why}
    <p>Add this secret to your authenticator app (or open the link on your phone):</p>
    <p><code class="secret">${esc(setup.secret)}</code></p>
    <p><code class="otpauth">${esc(setup.otpauth_url)}</code></p>
    <p>Recovery codes — each works once; keep them offline:</p>
    <ul class="codes">${setup.recovery_codes.map((c) => `<li><code>${esc(c)}</code></li>`).join('')}</ul>
    <form class="filters" data-form="mfa-verify"><label>Code from the app <input name="code" inputmode="numeric" autocomplete="one-time-code" required></label><button type="submit">Turn MFA on</button></form>
    ${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}`;
}
