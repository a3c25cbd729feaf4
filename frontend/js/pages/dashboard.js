// Dashboard: every run with status, equity, PnL and a small equity line; live through the event stream.
import { api } from "../api.js";
import { $, el, clear, appShell, start, notice, badge, pnlEl, fmtMoney, quoteOf, confirmDialog } from "../ui.js";
import { timeEl } from "../time.js";
import { sparkline } from "../charts.js";
import { liveEvents, liveBadge, debounce } from "../events.js";

const rows = new Map(); // run id -> {run, tr, equity: number[]}

function summary() {
  const dl = clear($("#summary"));
  const runs = [...rows.values()].map((r) => r.run);
  const byQuote = {};
  for (const r of runs) {
    const q = quoteOf(r.symbol) || "";
    byQuote[q] = byQuote[q] || { equity: 0, pnl: 0, stake: 0 };
    byQuote[q].equity += r.equity; byQuote[q].pnl += r.pnl; byQuote[q].stake += r.stake;
  }
  const tile = (label, value) => el("div", { class: "tile" }, el("dt", {}, label), el("dd", {}, value));
  dl.append(tile("Runs", String(runs.length)),
    tile("Running", String(runs.filter((r) => r.status === "running").length)));
  for (const [q, s] of Object.entries(byQuote)) {
    dl.append(tile(`Equity (${q || "quote"})`, fmtMoney(s.equity, q)),
      tile(`PnL (${q || "quote"})`, pnlEl(s.pnl, q, s.stake ? (s.pnl / s.stake) * 100 : null)));
  }
}

function renderRow(entry) {
  const r = entry.run;
  const q = quoteOf(r.symbol);
  const tr = el("tr", { "data-run": r.id },
    el("td", {}, el("a", { href: `/run.html?id=${encodeURIComponent(r.id)}` }, r.strategy)),
    el("td", {}, `${r.symbol} · ${r.timeframe}`, el("span", { class: "muted" }, ` ${r.exchange}`)),
    el("td", {}, badge(r.mode === "live" ? "error" : "muted", r.mode)),
    el("td", {}, badge(r.status)),
    el("td", { class: "num" }, fmtMoney(r.equity, q)),
    el("td", { class: "num" }, pnlEl(r.pnl, q, r.pnl_pct)),
    el("td", {}, sparkline(entry.equity)),
    el("td", {}, r.started_at ? timeEl(r.started_at) : el("span", { class: "muted" }, "not started")));
  if (entry.tr) entry.tr.replaceWith(tr);
  entry.tr = tr;
  return tr;
}

async function loadEquity(entry) {
  try {
    const points = await api(`/runs/${entry.run.id}/equity`, { query: { points: 200 } });
    entry.equity = points.map((p) => p.equity);
  } catch {
    entry.equity = [];
  }
}

async function load() {
  const page = await api("/runs", { query: { limit: 200 } });
  const tbody = clear($("#runs tbody"));
  rows.clear();
  if (!page.data.length) {
    tbody.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No runs yet. ", el("a", { href: "/strategies.html" }, "Pick a strategy"), " to start a paper run.")));
  }
  const entries = page.data.map((run) => ({ run, tr: null, equity: [] }));
  await Promise.all(entries.slice(0, 50).map(loadEquity));
  for (const e of entries) { rows.set(e.run.id, e); tbody.append(renderRow(e)); }
  summary();
}

// One debounced refresher per run: a burst of one run's events (order, fill, trade, equity) costs one
// refresh, and the runs of one tick do not cancel each other's.
const refreshers = new Map();
function refreshRun(id) {
  if (!refreshers.has(id)) refreshers.set(id, debounce(() => refreshOne(id), 400));
  refreshers.get(id)();
}

async function refreshOne(id) {
  const entry = rows.get(id);
  if (!entry) { load().catch(() => {}); return; }
  try {
    entry.run = await api(`/runs/${id}`);
    await loadEquity(entry);
    renderRow(entry);
    summary();
  } catch { /* the row keeps its last values */ }
}

start(async () => {
  const me = await appShell();
  if (new URLSearchParams(location.search).get("welcome")) {
    notice($("#banner"), "ok", `Welcome, ${me.email}. We sent you an e-mail to verify your address.`);
  } else if (me.is_verified === false) {
    notice($("#banner"), "warn", el("span", {}, "Your e-mail is not verified yet. ", el("a", { href: "/account.html" }, "Resend the link")));
  }
  const killAll = $("#kill-all");
  killAll.addEventListener("click", async () => {
    if (!(await confirmDialog("Stop every run now?", "All your running strategies are stopped, their open orders cancelled and positions closed at market.", "Stop all runs"))) return;
    try {
      const res = await api("/runs/kill-all", { method: "POST" });
      notice($("#banner"), "ok", `Kill switch: ${res.killed} run(s) stopped.`);
      await load();
    } catch (err) { notice($("#banner"), "error", err.detail); }
  });
  await load();
  liveEvents((type, data) => {
    if (data && data.run_id && ["status", "equity", "trade", "fill"].includes(type)) refreshRun(data.run_id);
  }, liveBadge($("#live")));
});
