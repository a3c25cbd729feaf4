// Admin: every user's runs (stop, kill) and the global trading halt.
import { api } from "../api.js";
import { fmtTime } from "../time.js";
import { $, el, clear, appShell, start, notice, badge, pnlEl, fmtMoney, quoteOf, field, confirmDialog, busy } from "../ui.js";
import { pager } from "../admin.js";
import { liveEvents, liveBadge, debounce } from "../events.js";

const LIMIT = 50;
let offset = 0;

async function halt() {
  const root = clear($("#halt"));
  let state;
  try { state = await api("/admin/halt"); }
  catch (err) { root.append(el("p", { class: "muted" }, err.detail)); return; }
  root.append(el("p", {}, state.halted ? badge("bad", "halted") : badge("ok", "trading"), " ",
    state.halted ? `since ${fmtTime(state.at)}: ${state.reason || "no reason given"}` : "Runs trade normally."));
  const form = el("form", { novalidate: true, "aria-label": state.halted ? "Resume trading" : "Halt all trading" },
    el("div", { class: "form-status", tabindex: "-1", role: "alert" }),
    state.halted ? null : field("Reason (shown to traders)", el("input", { name: "reason", required: true, maxlength: 500 })),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: state.halted ? "btn primary" : "btn danger" }, state.halted ? "Resume trading" : "Halt all trading")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reason = state.halted ? null : String(new FormData(form).get("reason") || "");
    if (!state.halted && !(await confirmDialog("Halt all trading?", "No run places an order until trading resumes.", "Halt"))) return;
    busy(form, async () => {
      try { await api("/admin/halt", { method: "PUT", json: { halted: !state.halted, reason } }); await halt(); }
      catch (err) { notice(form.querySelector(".form-status"), "error", err.detail); }
    });
  });
  root.append(form);
}

async function load(at = offset) {
  offset = at;
  const d = Object.fromEntries(new FormData($("#run-filter")));
  const tbody = clear($("#runs tbody"));
  let page;
  try { page = await api("/admin/runs", { query: { status: d.status, user: d.user, limit: LIMIT, offset } }); }
  catch (err) { tbody.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, err.detail))); return; }
  if (!page.data.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No run matches.")));
  for (const r of page.data) {
    const q = quoteOf(r.symbol);
    const act = (label, path, cls, title, msg) => {
      const b = el("button", { type: "button", class: `btn small ${cls}`, "aria-label": `${label} run ${r.strategy} of ${r.owner_email || "user"}` }, label);
      b.addEventListener("click", async () => {
        if (!(await confirmDialog(title, msg, label))) return;
        try { await api(path, { method: "POST" }); await load(); } catch (err) { notice($(".page-status"), "error", err.detail); }
      });
      return b;
    };
    const active = r.status === "running" || r.status === "paused";
    tbody.append(el("tr", {}, el("td", {}, r.owner_email || r.owner_id || "—"), el("td", {}, r.strategy), el("td", {}, `${r.symbol} · ${r.timeframe}`),
      el("td", {}, badge(r.mode === "live" ? "error" : "muted", r.mode)), el("td", {}, badge(r.status)),
      el("td", { class: "num" }, fmtMoney(r.equity, q)), el("td", { class: "num" }, pnlEl(r.pnl, q, r.pnl_pct)),
      el("td", {}, active ? el("div", { class: "actions" },
        act("Stop", `/admin/runs/${r.id}/stop`, "warn", "Stop this run?", "It stops now; open orders are cancelled."),
        act("Kill", `/admin/runs/${r.id}/kill`, "danger", "Kill this run?", "It stops now; open orders are cancelled and the position closed at market.")) : "—")));
  }
  pager($("#pager"), { offset, limit: LIMIT, count: page.count }, load);
}

start(async () => {
  await appShell({ admin: true });
  $("#run-filter").addEventListener("submit", (ev) => { ev.preventDefault(); load(0); });
  await Promise.all([halt(), load(0)]);
  const again = debounce(() => load().catch(() => {}), 1000);
  liveEvents((type) => { if (type === "status") again(); }, liveBadge($("#live")));
});
