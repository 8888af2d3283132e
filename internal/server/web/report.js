"use strict";
// The monthly SLA report page (#/report/PLAN/YYYY-MM): what
// GET /v1/plans/{plan}/report measured from the recorded history, laid out
// to be printed (the browser's print hides the console's chrome).

function fmtShare(x) {
  return x === undefined || x === null ? "unknown (no RPO target recorded)" : (x * 100).toFixed(2) + " %";
}

function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}

async function reportPage(view, arg) {
  const [plan, month] = arg.split("/").map(decodeURIComponent);
  const cfg = await api("GET", "/v1/config");
  const plans = ((cfg.config && cfg.config.plans) || []).map((p) => p.name);
  const chosen = plan || plans[0] || "";
  const m = month || thisMonth();
  const go = (p, mo) => { location.hash = "#/report/" + encodeURIComponent(p) + "/" + encodeURIComponent(mo); };
  const pick = el("select", { id: "report-plan", onchange: (e) => go(e.target.value, m) },
    plans.map((p) => el("option", { value: p, selected: p === chosen }, p)));
  const monthIn = el("input", { type: "month", id: "report-month", value: m, onchange: (e) => go(chosen, e.target.value) });
  const controls = el("p", { class: "noprint" }, "Plan ", pick, " month ", monthIn, " ",
    el("button", { type: "button", onclick: () => window.print() }, "Print"), " ",
    el("a", { href: `/v1/plans/${encodeURIComponent(chosen)}/report?month=${encodeURIComponent(m)}&format=csv`, id: "report-csv" }, "CSV"));
  if (!chosen) {
    view.replaceChildren(el("h2", {}, "Monthly report"), el("p", { class: "muted" }, "No plan in the applied config."));
    return;
  }
  const r = await api("GET", `/v1/plans/${encodeURIComponent(chosen)}/report?month=${encodeURIComponent(m)}`);
  view.replaceChildren(el("div", { id: "report", class: "report" },
    el("h2", {}, `Plan ${r.plan}: service report for ${r.month}`), controls,
    el("p", { class: "muted" }, `Measured from the recorded history, ${fmtTime(r.from)} to ${fmtTime(r.to)}.`),
    el("h3", {}, "Recovery point objective"),
    table(["machine", "RPO target", "time within target", "worst RPO", "points", "measured from"],
      r.machines.map((x) => el("tr", { "data-machine": x.machine }, el("td", {}, x.machine),
        el("td", {}, x.target_seconds ? fmtSecs(x.target_seconds) : "unknown"),
        el("td", { class: x.within_target === undefined ? "" : (x.within_target >= 0.999 ? "ok" : "bad"), "data-within": x.within_target }, fmtShare(x.within_target)),
        el("td", {}, fmtSecs(x.worst_rpo_seconds)), el("td", {}, x.points), el("td", {}, fmtTime(x.measured_from)))), { id: "report-machines" }),
    el("h3", {}, `Drills: ${r.drills_run} run, ${r.drills_passed} passed, ${r.drills_skipped} skipped or missed`),
    table(["started", "scheduled for", "result", "RTO", "RPO (oldest point used)", "job", "detail"],
      r.drills.map((d) => {
        const res = d.missed ? "missed" : (d.skipped ? "skipped" : (d.passed ? "passed" : "failed"));
        return el("tr", { "data-job": d.job }, el("td", {}, fmtTime(d.started)), el("td", {}, fmtTime(d.scheduled)),
          el("td", { class: d.passed ? "ok" : "bad" }, res), el("td", {}, d.rto_seconds === undefined ? "" : fmtSecs(d.rto_seconds)),
          el("td", {}, d.rpo_seconds === undefined ? "" : fmtSecs(d.rpo_seconds)), el("td", {}, d.job), el("td", {}, [d.error, d.skipped].filter(Boolean).join(" ")));
      }), { id: "report-drills" }),
    el("h3", {}, `Failovers: ${r.failovers.length}`),
    table(["started", "type", "state", "RTO", "data loss (widest)", "job"],
      r.failovers.map((f) => el("tr", {}, el("td", {}, fmtTime(f.started)), el("td", {}, f.type), el("td", {}, f.state),
        el("td", {}, f.rto_seconds === undefined ? "" : fmtSecs(f.rto_seconds)),
        el("td", {}, f.data_loss_seconds === undefined ? "" : fmtSecs(f.data_loss_seconds)), el("td", {}, f.job))), { id: "report-failovers" })));
}
