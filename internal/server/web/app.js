"use strict";
// Haven console: reads and drives the /v1 JSON API with the session
// cookie; every write carries the session's CSRF token in a header.

let session = { role: "", csrf: "" };
let poller = null;
let generation = 0; // bumped per page, so a late reply of a left page schedules nothing

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function table(head, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : [el("tr", {}, el("td", { colspan: head.length, class: "muted" }, "none"))]));
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) {
    location.href = "/ui/login";
    throw new Error("session ended: log in again");
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

function showError(err) {
  const p = document.getElementById("error");
  p.textContent = err ? String(err.message || err) : "";
  p.hidden = !err;
}

function fmtSecs(s) {
  if (s === undefined || s === null) return "unknown";
  if (s < 120) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 7200) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return (s / 3600).toFixed(1) + " h";
}

function fmtTime(t) {
  return t ? new Date(t).toLocaleString() : "";
}

const isAdmin = () => session.role === "admin";

// ACTIONS: what each job type does, in words the confirmation shows, and
// when a plan allows it (orchestrator phases; docs/api.md).
const ACTIONS = [
  { type: "test-failover", label: "Test failover", when: (p) => !p.test,
    text: (p, ms) => `Start copies of ${ms} from their newest points in the isolated test network of plan ${p.plan}. Production keeps running and customers are not moved.` },
  { type: "test-cleanup", label: "Clean up test", when: (p) => !!p.test,
    text: (p, ms) => `Stop and delete the test copies of ${ms} (test job ${p.test}) and record the drill in the history.` },
  { type: "planned-failover", label: "Planned failover", when: (p) => p.phase === "protected",
    text: (p, ms) => `Stop ${ms} at the primary site, take a final point, start them at the recovery site and move customers' traffic there. No data is lost; the service is down while it runs.` },
  { type: "unplanned-failover", label: "Unplanned failover", when: (p) => p.phase === "protected",
    text: (p, ms) => `Start ${ms} at the recovery site from their newest points without a final point (disaster). Writes after those points are lost; a primary whose agent still answers is fenced first. Customers' traffic moves to the recovery site.` },
  { type: "commit", label: "Commit", when: (p) => p.phase === "failed-over",
    text: (p) => `Make the failover of plan ${p.plan} final: its point can no longer be changed and the failover can no longer be canceled.` },
  { type: "cancel-failover", label: "Cancel failover", when: (p) => p.phase === "failed-over",
    text: (p, ms) => `Undo the failover of plan ${p.plan}: stop ${ms} at the recovery site and send customers back to the primary site.` },
  { type: "reprotect", label: "Reprotect", when: (p) => p.phase === "committed",
    text: (p, ms) => `Replicate ${ms} from the recovery site back to the primary site, so that plan ${p.plan} can fail back.` },
  { type: "failback", label: "Failback", when: (p) => p.phase === "reprotected",
    text: (p, ms) => `Stop ${ms} at the recovery site, bring them up at the primary site with the recovery site's data and move customers' traffic back.` },
];

function confirmAction(title, text, yes) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yes;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

async function submitJob(a, plan, machines) {
  const ms = machines.length ? machines.join(", ") : "the plan's machines";
  if (!(await confirmAction(`${a.label} of plan ${plan.plan}?`, a.text(plan, ms), a.label))) return;
  try {
    const job = await api("POST", `/v1/plans/${encodeURIComponent(plan.plan)}/jobs`, { type: a.type, params: {} });
    location.hash = "#/job/" + encodeURIComponent(job.id);
  } catch (e) {
    showError(e);
  }
}

function planActions(plan, machines, busy) {
  if (!isAdmin()) return el("span", { class: "muted" }, "read-only");
  return ACTIONS.filter((a) => a.when(plan)).map((a) =>
    el("button", { type: "button", "data-action": a.type, "data-plan": plan.plan, disabled: busy,
      title: busy ? "another job holds this plan" : a.label, onclick: () => submitJob(a, plan, machines) }, a.label));
}

function planMachines(cfg, name) {
  const p = ((cfg && cfg.plans) || []).find((x) => x.name === name);
  return p ? p.groups.flatMap((g) => g.machines) : [];
}

function planRows(plans, cfg, jobs, drills) {
  return plans.map((p) => {
    const active = jobs.find((j) => j.plan === p.plan);
    const last = drills.find((d) => d.plan === p.plan);
    const groups = (((cfg && cfg.plans) || []).find((x) => x.name === p.plan) || { groups: [] }).groups;
    return el("tr", { "data-plan": p.plan },
      el("td", {}, p.plan),
      el("td", {}, groups.map((g, i) => el("div", {}, `${i + 1}. ${g.name || "group"}: ${g.machines.join(", ")}`))),
      el("td", { class: "phase" }, p.phase),
      el("td", {}, p.test ? el("a", { href: "#/job/" + p.test }, p.test) : ""),
      el("td", {}, active ? el("a", { href: "#/job/" + active.id }, `${active.type} (${active.state})`) : ""),
      el("td", {}, last ? `${fmtTime(last.cleaned_up)}: ${last.passed ? "passed" : "failed"}, RTO ${fmtSecs(last.rto_seconds)}` : "never"),
      el("td", {}, planActions(p, planMachines(cfg, p.plan), !!active)));
  });
}

const planHead = ["plan", "groups (in order)", "phase", "test copy", "active job", "last drill", "actions"];

// plansTable keeps the table node while its data is unchanged, so a
// refresh never swaps a button from under a click.
function plansTable(view, st, cfg, drills) {
  const key = JSON.stringify([st.plans, st.active_jobs.map((j) => [j.id, j.plan, j.type, j.state]), drills, cfg.version, session.role]);
  const old = view.querySelector("#plans");
  if (old && old.dataset.key === key) return old;
  const t = table(planHead, planRows(st.plans || [], cfg.config, st.active_jobs, drills), { id: "plans" });
  t.dataset.key = key;
  return t;
}

async function dashboard(view) {
  const [st, cfg, drills] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/config"), api("GET", "/v1/drills")]);
  view.replaceChildren(
    el("h2", {}, "Alerts"),
    st.alerts.length ? el("ul", { id: "alerts" }, st.alerts.map((a) => el("li", { class: "bad" }, a))) : el("p", { class: "ok", id: "alerts" }, "No alerts."),
    el("h2", {}, "Sites"),
    sitesTable(st, cfg.config),
    el("img", { id: "sitemap", class: "chart", src: "/v1/sitemap.svg?t=" + Date.now(), alt: "site map: where each machine runs now and what DNS answers" }),
    el("h2", {}, "Machines"),
    table(["machine", "agent", "last point", "point time", "RPO", "RPO target", "consistency", "points", "standby", "error", "recovered copies"],
      st.machines.map((m) => {
        const over = m.rpo_seconds !== undefined && m.rpo_alert_seconds > 0 && m.rpo_seconds > m.rpo_alert_seconds;
        return el("tr", { "data-machine": m.name },
          el("td", {}, el("a", { href: "#/machine/" + encodeURIComponent(m.name) }, m.name)), el("td", {}, m.agent || ""), el("td", {}, m.last_point || "none"),
          el("td", {}, fmtTime(m.point_time)),
          el("td", { class: "rpo " + (m.rpo_seconds === undefined || over ? "bad" : "ok") }, fmtSecs(m.rpo_seconds)),
          el("td", {}, m.rpo_alert_seconds ? fmtSecs(m.rpo_alert_seconds) : ""),
          el("td", {}, m.consistency || ""), el("td", {}, m.points), el("td", {}, m.standby_point || ""),
          el("td", { class: "bad" }, m.last_error || ""),
          el("td", { class: "recovered " + ((m.recovered || []).some(starved) ? "bad" : "") }, (m.recovered || []).map(recoveredText).join("; ")));
      }), { id: "machines" }),
    el("h2", {}, "Agents"),
    table(["agent", "health", "last heartbeat"], st.agents.map((a) => el("tr", {},
      el("td", {}, a.name), el("td", { class: a.healthy ? "ok" : "bad" }, a.healthy ? "healthy" : "silent"),
      el("td", {}, a.last_heartbeat ? fmtTime(a.last_heartbeat) : "never")))),
    el("h2", {}, "Running jobs"),
    jobTable(st.active_jobs),
    el("h2", {}, "Plans"),
    plansTable(view, st, cfg, drills));
  poller = setTimeout(() => route(), 5000);
}

// sitesTable: the two sites, their networks, and which plans' machines
// run at each now (a plan's phase says where; a test copy runs isolated at
// the recovery site).
function sitesTable(st, c) {
  const at = { primary: [], recovery: [] };
  for (const p of c.plans || []) {
    const ps = (st.plans || []).find((x) => x.plan === p.name) || { phase: "protected" };
    const ms = p.groups.flatMap((g) => g.machines).join(", ");
    (ps.phase === "protected" ? at.primary : at.recovery).push(`${p.name} (${ms})`);
    if (ps.test) at.recovery.push(`${p.name}: test copy ${ps.test}`);
  }
  const nets = (list) => (list || []).map((n) => `${n.name} ${n.subnet}`).join(", ");
  const sites = c.sites || {};
  return table(["site", "role", "networks", "running now"], [
    el("tr", { "data-site": "primary" }, el("td", {}, sites.primary || ""), el("td", {}, "primary"), el("td", {}, nets((c.networks || {}).primary)), el("td", {}, at.primary.join("; ") || "nothing")),
    el("tr", { "data-site": "recovery" }, el("td", {}, sites.recovery || ""), el("td", {}, "recovery"),
      el("td", {}, nets((c.networks || {}).recovery) + ((c.networks || {}).test ? "; test: " + nets(c.networks.test) : "")), el("td", {}, at.recovery.join("; ") || "nothing")),
  ], { id: "sites" });
}

async function plansPage(view) {
  const [st, cfg, drills] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/config"), api("GET", "/v1/drills")]);
  view.replaceChildren(el("h2", {}, "Plans"), plansTable(view, st, cfg, drills));
  poller = setTimeout(() => route(), 5000);
}

function jobTable(jobs) {
  return table(["job", "plan", "type", "state", "created", "ended", "error"], jobs.map((j) => el("tr", { "data-job": j.id },
    el("td", {}, el("a", { href: "#/job/" + j.id }, j.id)), el("td", {}, j.plan), el("td", {}, j.type),
    el("td", { class: stateClass(j.state) }, j.state), el("td", {}, fmtTime(j.created)), el("td", {}, fmtTime(j.ended)),
    el("td", { class: "bad" }, j.error || ""))));
}

function stateClass(s) {
  return { succeeded: "ok", done: "ok", failed: "bad", waiting: "warn", running: "warn", canceling: "warn" }[s] || "";
}

async function jobsPage(view) {
  const jobs = await api("GET", "/v1/jobs?limit=100");
  view.replaceChildren(el("h2", {}, "Jobs"), jobTable(jobs));
  poller = setTimeout(() => route(), 5000);
}

const activeStates = ["running", "waiting", "failed", "canceling"];

function jobButtons(j) {
  if (!isAdmin()) return [];
  const acts = [
    { path: "approve", label: "Approve", when: j.state === "waiting", text: `Approve the manual step of job ${j.id} (${j.type} of ${j.plan}): the job goes on with its next step.` },
    { path: "retry", label: "Retry", when: j.state === "failed", text: `Run the failed step of job ${j.id} (${j.type} of ${j.plan}) again, then the steps after it.` },
    { path: "cancel", label: "Cancel job", when: activeStates.includes(j.state) && j.state !== "canceling", text: `Cancel job ${j.id} (${j.type} of ${j.plan}): undo what its steps did, newest first.` },
  ];
  return acts.filter((a) => a.when).map((a) => el("button", { type: "button", "data-job-action": a.path, onclick: async () => {
    if (!(await confirmAction(`${a.label}?`, a.text, a.label))) return;
    try { await api("POST", `/v1/jobs/${encodeURIComponent(j.id)}/${a.path}`); } catch (e) { showError(e); }
  } }, a.label));
}

async function jobPage(view, id) {
  const logs = el("pre", { class: "logs", id: "logs" });
  const head = el("div", {});
  const steps = el("div", {});
  const report = el("div", { id: "report" });
  const chart = el("img", { id: "job-timeline", class: "chart", alt: "the job's steps on a time axis" });
  view.replaceChildren(el("h2", {}, "Job " + id), head, chart, steps, el("h2", {}, "Log"), logs, report);
  let seq = 0;
  const gen = generation;
  const tick = async () => {
    if (gen !== generation) return;
    try {
      const j = await api("GET", "/v1/jobs/" + encodeURIComponent(id));
      const lines = await api("GET", `/v1/jobs/${encodeURIComponent(id)}/logs?after=${seq}`);
      for (const l of lines) {
        logs.append(`${fmtTime(l.time)} ${l.level} ${l.msg}\n`);
        seq = l.seq;
      }
      const done = j.steps.filter((s) => s.state === "done" || s.state === "skipped").length;
      chart.src = `/v1/jobs/${encodeURIComponent(id)}/timeline.svg?t=${Date.now()}`;
      head.replaceChildren(el("p", {}, `${j.type} of plan ${j.plan}: `, el("strong", { id: "job-state", class: stateClass(j.state) }, j.state),
        ` — ${done}/${j.steps.length} steps`, j.error ? el("span", { class: "bad" }, " — " + j.error) : ""), el("p", {}, jobButtons(j)));
      steps.replaceChildren(table(["step", "state", "started", "ended", "tries", "error"], j.steps.map((s) => el("tr", {},
        el("td", {}, s.name), el("td", { class: stateClass(s.state) }, s.state), el("td", {}, fmtTime(s.started)),
        el("td", {}, fmtTime(s.ended)), el("td", {}, s.tries || ""), el("td", { class: "bad" }, s.error || "")))));
      if (activeStates.includes(j.state) || j.state === "canceling") {
        poller = setTimeout(tick, 1000);
      } else {
        report.replaceChildren(renderReport(await api("GET", `/v1/jobs/${encodeURIComponent(id)}/report`)));
      }
    } catch (e) {
      showError(e);
      poller = setTimeout(tick, 3000);
    }
  };
  await tick();
}

function renderReport(r) {
  return el("section", {},
    el("h2", {}, "Report"),
    el("p", {}, `State ${r.state}; RTO `, el("strong", { id: "rto" }, fmtSecs(r.rto_seconds)),
      r.dns_seconds !== undefined ? `; DNS answered after ${fmtSecs(r.dns_seconds)}` : ""),
    (r.points || []).length ? table(["machine", "point", "time", "consistency", "age at start", "data loss"], r.points.map((p) => el("tr", {},
      el("td", {}, p.machine), el("td", {}, p.point), el("td", {}, fmtTime(p.time)), el("td", {}, p.consistency),
      el("td", {}, fmtSecs(p.age_seconds)), el("td", {}, p.data_loss_seconds !== undefined ? fmtSecs(p.data_loss_seconds) : "")))) : "",
    (r.machines || []).length ? table(["machine", "address", "healthy after"], r.machines.map((m) => el("tr", {},
      el("td", {}, m.machine), el("td", {}, m.address), el("td", {}, fmtSecs(m.healthy_seconds))))) : "",
    (r.disks || []).length ? table(["machine", "disk", "method", "written", "fetched", "time"], r.disks.map((d) => el("tr", {},
      el("td", {}, d.machine), el("td", {}, d.disk), el("td", {}, d.method), el("td", {}, d.bytes_written),
      el("td", {}, d.bytes_fetched), el("td", {}, fmtSecs(d.seconds))))) : "",
    (r.warnings || []).map((w) => el("p", { class: "warn" }, w)));
}

// recoveredText: a recovered copy's state and what its memory limit did
// (a VM's guest-internal OOM is not seen from the host).
function recoveredText(r) {
  const where = `${r.site} on ${r.host}: `;
  if (r.error) return where + "host cannot tell: " + r.error;
  if (!r.running) return where + "not running";
  const m = r.memory || {};
  if (!m.source) return where + "running, no memory limit";
  if (m.source === "vm") return where + `running, VM of ${m.limit_mb} MiB (guest OOM not seen)`;
  return where + `running, memory ${m.usage_mb || 0} of ${m.limit_mb} MiB, at the limit ${m.at_limit} times, ${m.oom_kills} OOM kills` +
    (m.oom_kills > 0 ? " (IT WENT OVER ITS MEMORY LIMIT)" : "");
}

function starved(r) { return !!(r.memory && r.memory.oom_kills > 0); }

// machinePage: what is protected, its points timeline, and how it is
// recovered.
async function machinePage(view, name) {
  const [st, cfg, pts] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/config"),
    api("GET", "/v1/machines/" + encodeURIComponent(name) + "/points")]);
  const m = (cfg.config.machines || []).find((x) => x.name === name);
  const ms = st.machines.find((x) => x.name === name);
  if (!m || !ms) throw new Error("no machine " + name + " in the applied config");
  const h = m.health || {};
  const plans = (cfg.config.plans || []).filter((p) => p.groups.some((g) => g.machines.includes(name))).map((p) => p.name);
  view.replaceChildren(el("h2", {}, "Machine " + name),
    table(["agent", "last point", "point time", "consistency", "RPO", "RPO target", "points", "standby image", "plans"], [el("tr", { id: "machine" },
      el("td", {}, m.agent), el("td", {}, ms.last_point || "none"), el("td", {}, fmtTime(ms.point_time)), el("td", {}, ms.consistency || ""),
      el("td", { class: "rpo" }, fmtSecs(ms.rpo_seconds)), el("td", {}, ms.rpo_alert_seconds ? fmtSecs(ms.rpo_alert_seconds) : ""),
      el("td", {}, ms.points), el("td", {}, ms.standby_point || ""), el("td", {}, plans.join(", ")))]),
    el("h2", {}, "RPO against its target"),
    el("img", { id: "rpo-day", class: "chart", src: `/v1/machines/${encodeURIComponent(name)}/rpo.svg?span=day`, alt: "RPO over the last day" }),
    el("img", { id: "rpo-month", class: "chart", src: `/v1/machines/${encodeURIComponent(name)}/rpo.svg?span=month`, alt: "RPO over the last 30 days" }),
    ...(ms.encryption_alerts || []).filter((a) => a.open).map((a) => el("p", { class: "bad encryption-alert" },
      `Encryption suspected from point ${a.first_suspect} (${a.suspect_points} suspect points): ${a.reason}. ` +
      `Last clean point: ${a.last_clean || "none left"} (--point last-clean; close with haven alert close ${name} ${a.first_suspect}).`)),
    ...((ms.recovered || []).length ? [el("h2", {}, "At the recovery site"),
      table(["plan", "site", "host", "job", "state and memory"], ms.recovered.map((r) => el("tr", { "data-recovered": r.site },
        el("td", {}, r.plan), el("td", {}, r.site), el("td", {}, r.host), el("td", {}, r.job),
        el("td", { class: starved(r) ? "bad" : "" }, recoveredText(r)))), { id: "recovered" })] : []),
    el("h2", {}, "Recovery points"),
    timeline(pts),
    table(["time", "consistency", "point", "provider", "notes"], pts.slice(0, 50).map((p) => el("tr", { "data-point": p.id },
      el("td", {}, fmtTime(p.time)), el("td", { class: "c-" + p.consistency }, p.consistency), el("td", {}, p.id),
      el("td", {}, p.provider || ""), el("td", { class: p.suspect ? "bad" : p.last_clean ? "ok" : "" },
        [p.suspect ? "SUSPECT: encryption alert" : "", p.last_clean ? "LAST CLEAN (kept; --point last-clean)" : ""]
          .concat(Object.entries(p.tags || {}).map(([k, v]) => k + ": " + v)).filter((x) => x).join("; ")))), { id: "points" }),
    el("h2", {}, "Disks"),
    table(["disk", "path", "file system", "mount"], (m.disks || []).map((d) => el("tr", {},
      el("td", {}, d.name), el("td", {}, d.path || ""), el("td", {}, d.fstype || ""), el("td", {}, d.mount || ""))), { id: "disks" }),
    el("h2", {}, "Recovery settings"),
    table(["NIC", "primary network", "primary address", "at recovery", "static address"], (m.nics || []).map((n) => el("tr", {},
      el("td", {}, n.name), el("td", {}, n.network), el("td", {}, n.address), el("td", {}, n.recovery || "keep"), el("td", {}, n.static || "")))),
    el("p", {}, "Health check: " + (h.http_port ? `HTTP ${h.http_port}${h.http_path || "/"}` : h.tcp_port ? `TCP ${h.tcp_port}` : "none") +
      (m.health_timeout ? `, within ${fmtSecs(m.health_timeout / 1e9)}` : "") + (m.cpus ? `; ${m.cpus} CPUs` : "") + (m.memory_mb ? `, ${m.memory_mb} MiB` : "")),
    ms.last_error ? el("p", { class: "bad" }, "Replication error: " + ms.last_error) : "");
}

// timeline draws the points of the last hour as ticks on a line, app-
// consistent ones tall, so gaps in replication show at a glance.
function timeline(pts) {
  const now = Date.now(), span = 3600e3;
  const line = el("div", { class: "timeline", id: "timeline", title: "recovery points, last hour (app-consistent ticks are tall)" });
  for (const p of pts) {
    const age = now - Date.parse(p.time);
    if (age < 0 || age > span) continue;
    line.append(el("span", { class: "tick c-" + p.consistency, style: `left:${100 - (age / span) * 100}%`, title: p.time + " " + p.consistency }));
  }
  return line;
}

async function drillsPage(view) {
  const ds = await api("GET", "/v1/drills");
  view.replaceChildren(el("h2", {}, "Drill history"), table(["plan", "job", "started", "cleaned up", "result", "RTO", "note", "error"],
    ds.map((d) => el("tr", {}, el("td", {}, d.plan), el("td", {}, el("a", { href: "#/job/" + d.job_id }, d.job_id)),
      el("td", {}, fmtTime(d.started)), el("td", {}, fmtTime(d.cleaned_up)),
      el("td", { class: d.passed ? "ok" : "bad" }, d.passed ? "passed" : "failed"), el("td", {}, fmtSecs(d.rto_seconds)),
      el("td", {}, d.note || ""), el("td", { class: "bad" }, d.error || ""))), { id: "drills" }));
}

// trafficPage: each profile a plan's DNS cut-over changes, with its
// endpoints' live states from the traffic manager, and the cut-overs.
async function trafficPage(view) {
  const [st, cfg, tr] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/config"), api("GET", "/v1/traffic")]);
  const c = cfg.config;
  const rows = [];
  for (const p of c.plans || []) {
    const phase = ((st.plans || []).find((x) => x.plan === p.name) || {}).phase || "";
    for (const g of p.groups) {
      for (const a of [...(g.before || []), ...(g.after || [])].filter((a) => a.type === "dns")) {
        rows.push(el("tr", {}, el("td", {}, p.name), el("td", {}, phase), el("td", {}, g.name || ""), el("td", {}, a.profile),
          el("td", {}, a.endpoint), el("td", {}, (a.directions || ["always"]).join(", ")), el("td", {}, (a.types || ["all"]).join(", "))));
      }
    }
  }
  const eps = [];
  for (const prof of tr) {
    if (prof.error) {
      eps.push(el("tr", {}, el("td", {}, prof.name), el("td", { class: "bad", colspan: "6" }, "traffic manager: " + prof.error)));
      continue;
    }
    for (const e of prof.endpoints) {
      eps.push(el("tr", { "data-endpoint": prof.name + "/" + e.name }, el("td", {}, prof.name), el("td", {}, e.name), el("td", {}, e.target || ""),
        el("td", {}, e.enabled ? "enabled" : "disabled"), el("td", {}, e.priority),
        el("td", { class: e.state === "Online" ? "ok" : (e.state === "Degraded" ? "bad" : "") }, e.state), el("td", {}, e.last_error || "")));
    }
  }
  const servers = (st.dns_servers || []).map((d) => el("tr", { "data-dns-server": d.name }, el("td", {}, d.name),
    el("td", { class: d.reachable ? "ok" : "bad" }, d.reachable ? "reachable" : "unreachable: " + (d.error || "")),
    el("td", {}, String(d.generation)),
    el("td", {}, (d.answers || []).map((a) => `${a.profile} → ${a.error ? "error: " + a.error : (a.answers || []).join(", ")}`).join("; "))));
  view.replaceChildren(el("h2", {}, "Traffic"),
    el("p", { class: "muted" }, c.traffic ? `Traffic manager API ${c.traffic.api || (c.traffic.servers || []).map((x) => x.name || x.api).join(", ")}` + (c.traffic.netns ? ` (from namespace ${c.traffic.netns})` : "") : "No traffic manager configured."),
    table(["profile", "endpoint", "target", "enabled", "priority", "state", "last error"], eps, { id: "endpoints" }),
    el("h2", {}, "DNS servers"),
    table(["server", "state", "generation", "answers"], servers, { id: "dns-servers" }),
    el("h2", {}, "DNS cut-overs in plans"),
    table(["plan", "phase", "group", "profile", "endpoint made the only answer", "directions", "failover types"], rows, { id: "cutovers" }));
}

async function route() {
  generation++;
  clearTimeout(poller);
  poller = null;
  const view = document.getElementById("view");
  const h = location.hash.replace(/^#\/?/, "");
  try {
    showError(null);
    if (h.startsWith("job/")) await jobPage(view, decodeURIComponent(h.slice(4)));
    else if (h.startsWith("machine/")) await machinePage(view, decodeURIComponent(h.slice(8)));
    else if (h === "plans") await plansPage(view);
    else if (h === "jobs") await jobsPage(view);
    else if (h === "drills") await drillsPage(view);
    else if (h === "report" || h.startsWith("report/")) await reportPage(view, h.slice(7));
    else if (h === "traffic") await trafficPage(view);
    else await dashboard(view);
  } catch (e) {
    showError(e);
  }
}

async function start() {
  const r = await fetch("/ui/session", { credentials: "same-origin" });
  if (!r.ok) {
    location.href = "/ui/login";
    return;
  }
  session = await r.json();
  document.getElementById("who").textContent = session.role === "admin" ? "admin" : "viewer (read-only)";
  document.body.dataset.role = session.role;
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/ui/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf }, credentials: "same-origin" });
    location.href = "/ui/login";
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
