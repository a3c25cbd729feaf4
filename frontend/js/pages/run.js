// Run detail: live candles with trade markers, position, equity, orders, trades and the events log;
// start, stop and kill; the strategy version it runs, and a move to a newer approved version while it is
// not running. Updates arrive through the event stream (no polling).
import { api } from "../api.js";
import { $, el, clear, appShell, start, notice, badge, pnlEl, fmtMoney, fmtAmount, fmtNum, quoteOf, baseOf, confirmDialog, showNotFound } from "../ui.js";
import { timeEl, timeframeSeconds } from "../time.js";
import { marketCatalog, exchangeEntry } from "../markets.js";
import { candleChart, equityChart } from "../charts.js";
import { liveEvents, liveBadge, debounce } from "../events.js";

const id = new URLSearchParams(location.search).get("id");
let run = null;
let candles = null;
let equity = null;
// What the page shows, and so asks for: the newest orders, trades and events, a downsampled equity curve
// of the whole run, the latest candles.
const ORDERS_SHOWN = 100;
const TRADES_SHOWN = 100;
const EVENTS_SHOWN = 200;
const EQUITY_POINTS = 1000;
const CANDLES_SHOWN = 500;
const list = (r) => (Array.isArray(r) ? r : (r && (r.data || r.candles)) || []);

function tile(label, value) { return el("div", { class: "tile" }, el("dt", {}, label), el("dd", {}, value)); }

function renderRun() {
  const q = quoteOf(run.symbol), b = baseOf(run.symbol);
  document.title = `${run.strategy} ${run.symbol} · Tradefleet`;
  $("#run-title").textContent = `${run.strategy} · ${run.symbol}`;
  $("#run-sub").textContent = `${run.strategy_version != null ? `version ${run.strategy_version} · ` : ""}${run.exchange} · ${run.timeframe} · ${run.mode} · stake ${fmtMoney(run.stake, q)}`;
  clear($("#run-status")).append(badge(run.status));
  const reason = $("#run-reason");
  if (run.status_reason) notice(reason, run.status === "paused" ? "warn" : "info", run.status_reason); else notice(reason, "", "");
  clear($("#run-tiles")).append(
    tile("Equity", fmtMoney(run.equity, q)), tile("PnL", pnlEl(run.pnl, q, run.pnl_pct)),
    tile("Realised", pnlEl(run.realised_pnl, q)), tile("Unrealised", pnlEl(run.unrealised_pnl, q)),
    tile("Fees paid", fmtMoney(run.fees_paid, q)), tile("Last price", fmtMoney(run.last_price, q)));
  const pos = clear($("#position"));
  const kv = (k, v) => pos.append(el("dt", {}, k), el("dd", { class: "mono" }, v));
  kv("Position", run.position_amount ? `${fmtAmount(run.position_amount, b)} long` : "flat");
  kv("Entry price", run.position_amount ? fmtMoney(run.position_entry_price, q) : "—");
  kv("Cash", fmtMoney(run.cash, q));
  kv("Last candle", run.last_candle_ms ? timeEl(run.last_candle_ms) : "—");
  kv("Started", timeEl(run.started_at));
  if (run.stopped_at) kv("Stopped", timeEl(run.stopped_at));
  const live = run.status === "running" || run.status === "paused";
  $("#btn-start").hidden = run.status !== "created";
  $("#btn-stop").hidden = !live;
  $("#btn-kill").hidden = !live;
  renderVersion();
}

// ---- the pinned strategy version, and moving a run that is not running to a newer approved one ----

let versions = null;   // approved versions of the run's strategy, or null when not known

async function loadVersions() {
  try {
    versions = list(await api(`/strategies/${encodeURIComponent(run.strategy)}/versions`));
  } catch {
    versions = null;
  }
  renderVersion();
}

function newestVersion() {
  if (!versions || !versions.length) return null;
  return versions.reduce((best, v) => (v.version != null && (!best || v.version > best.version) ? v : best), null);
}

function renderVersion() {
  const box = $("#run-version");
  const newest = newestVersion();
  const current = run.strategy_version;
  const movable = run.status !== "running" && newest && newest.id !== run.strategy_version_id && (current == null || newest.version > current);
  if (!movable) { notice(box, "", ""); return; }
  const move = el("button", { type: "button", class: "btn small primary", id: "btn-move-version" }, `Move to version ${newest.version}`);
  move.addEventListener("click", async () => {
    const by = newest.author ? ` by ${newest.author}` : "";
    if (!(await confirmDialog(`Move this run to version ${newest.version}?`,
      `The run will execute ${run.strategy} version ${newest.version}${by} from its next start; its trades so far stay as they are.`, "Move the run", false))) return;
    move.disabled = true;
    try {
      const moved = await api(`/runs/${id}/strategy-version`, { method: "POST", json: { version_id: newest.id } });
      run = moved && moved.id ? moved : await api(`/runs/${id}`);
      renderRun();
      notice($(".page-status"), "ok", `The run now uses ${run.strategy} version ${run.strategy_version ?? newest.version}.`);
    } catch (err) {
      move.disabled = false;
      notice($(".page-status"), "error", err.detail);
    }
  });
  notice(box, "info", el("div", { class: "run-version" },
    el("span", {}, `A newer approved version of ${run.strategy} exists: version ${newest.version}${newest.author ? ` by ${newest.author}` : ""} (this run uses ${current != null ? `version ${current}` : "an older version"}).`),
    el("div", { class: "actions" }, move)));
}

async function loadOrders() {
  const q = quoteOf(run.symbol), b = baseOf(run.symbol);
  const orders = list(await api(`/runs/${id}/orders`, { query: { limit: ORDERS_SHOWN, order: "desc" } }));
  const tbody = clear($("#orders tbody"));
  if (!orders.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No orders yet.")));
  for (const o of orders) {
    tbody.append(el("tr", {}, el("td", {}, timeEl(o.signal_candle_ms)),
      el("td", {}, el("span", { class: `pnl ${o.side === "buy" ? "pos" : "neg"}` }, o.side)), el("td", {}, o.type),
      el("td", { class: "num" }, fmtAmount(o.filled || o.amount, b)), el("td", { class: "num" }, fmtMoney(o.average ?? o.price, q)),
      el("td", { class: "num" }, fmtMoney(o.fee, o.fee_currency || q)), el("td", {}, badge(o.status)), el("td", {}, o.reason || "")));
  }
}

async function loadTrades() {
  const q = quoteOf(run.symbol), b = baseOf(run.symbol);
  const trades = list(await api(`/runs/${id}/trades`, { query: { limit: TRADES_SHOWN, order: "desc", include_open: true } }));
  if (candles) candles.setTrades(trades);
  const tbody = clear($("#trades tbody"));
  if (!trades.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No trades yet.")));
  for (const t of trades) {
    tbody.append(el("tr", {}, el("td", {}, timeEl(t.entry_time_ms)),
      el("td", {}, t.exit_time_ms ? timeEl(t.exit_time_ms) : badge("open")), el("td", { class: "num" }, fmtMoney(t.entry_price, q)),
      el("td", { class: "num" }, fmtMoney(t.exit_price, q)), el("td", { class: "num" }, fmtAmount(t.amount, b)),
      el("td", { class: "num" }, t.pnl != null ? pnlEl(t.pnl, q, t.pnl_pct) : "—"), el("td", {}, t.exit_reason || "")));
  }
}

function eventItem(e) {
  return el("li", { class: `lvl-${e.level || "info"}` }, timeEl(e.created_at || e.at, { seconds: true }), " ",
    el("span", { class: "badge muted" }, e.kind || "log"), " ", e.message || "");
}

async function loadEvents() {
  const events = list(await api(`/runs/${id}/events`, { query: { limit: EVENTS_SHOWN, order: "desc" } }));
  const ol = clear($("#events"));
  if (!events.length) ol.append(el("li", { class: "muted" }, "No events yet."));
  for (const e of events) ol.append(eventItem(e));
}

async function loadEquity() {
  const points = list(await api(`/runs/${id}/equity`, { query: { points: EQUITY_POINTS } }));
  equity.setPoints(points);
}

async function loadCandles() {
  const note = $("#candles-note");
  try {
    const rows = list(await api(`/runs/${id}/candles`, { query: { limit: CANDLES_SHOWN } }));
    candles.setCandles(rows);
    if (!rows.length) notice(note, "info", "No candles yet: they appear with the first closed candle.");
  } catch (err) {
    notice(note, "warn", err.detail);
  }
}

async function refreshRun() { run = await api(`/runs/${id}`); renderRun(); }

const soon = {
  run: debounce(() => refreshRun().catch(() => {}), 300),
  orders: debounce(() => loadOrders().catch(() => {}), 300),
  trades: debounce(() => loadTrades().catch(() => {}), 300),
  events: debounce(() => loadEvents().catch(() => {}), 300),
  equity: debounce(() => loadEquity().catch(() => {}), 300),
  candles: debounce(() => loadCandles().catch(() => {}), 300),
  versions: debounce(() => loadVersions().catch(() => {}), 300),
};

function onEvent(type, data) {
  if (!data || data.run_id !== id) return;
  if (type === "candle") {
    const c = data.candle || data;
    if (c.open !== undefined || Array.isArray(c)) {
      candles.update(c);
      notice($("#candles-note"), "", "");
    } else soon.candles();
    soon.run();
  } else if (type === "order" || type === "fill") { soon.orders(); soon.run(); }
  else if (type === "trade") { soon.trades(); soon.run(); }
  else if (type === "status") { soon.run(); soon.events(); soon.versions(); }
  else if (type === "log") {
    const e = data.event || data;
    if (e && e.message) {
      const ol = $("#events");
      const placeholder = ol.querySelector("li.muted");
      if (placeholder) placeholder.remove();
      ol.prepend(eventItem({ ...e, created_at: e.created_at || new Date().toISOString() }));
      while (ol.children.length > EVENTS_SHOWN) ol.lastElementChild.remove();
    } else soon.events();
  } else if (type === "equity") {
    if (data.equity !== undefined && (data.candle_ms !== undefined)) equity.update(data); else soon.equity();
    soon.run();
  }
}

async function action(path, title, message, label) {
  if (title && !(await confirmDialog(title, message, label))) return;
  try {
    run = await api(path, { method: "POST" }).then((r) => (r && r.id ? r : api(`/runs/${id}`)));
    renderRun();
    soon.orders(); soon.events(); soon.trades();
  } catch (err) {
    notice($(".page-status"), "error", err.detail);
  }
}

start(async () => {
  await appShell();
  if (!id) { showNotFound("No run given", "Open a run from the dashboard."); return; }
  let catalog;
  try {
    [run, catalog] = await Promise.all([api(`/runs/${id}`), marketCatalog()]);
  } catch (err) {
    // 404: no run of yours has this id; 422: it is not a run id at all. Either way there is nothing to show.
    if (err.status === 404 || err.status === 422) {
      showNotFound("Run not found", "None of your runs has this id. It may have been deleted, or the link may be mistyped.");
      return;
    }
    throw err;
  }
  const entry = exchangeEntry(catalog, run.exchange);
  candles = candleChart($("#run-candles"), { barSeconds: timeframeSeconds(entry && entry.timeframes, run.timeframe) });
  equity = equityChart($("#run-equity"));
  renderRun();
  $("#btn-start").addEventListener("click", () => action(`/runs/${id}/start`));
  $("#btn-stop").addEventListener("click", () => action(`/runs/${id}/stop`, "Stop this run?", "The run stops at once and its open orders are cancelled. An open position is kept.", "Stop the run"));
  $("#btn-kill").addEventListener("click", () => action(`/runs/${id}/kill`, "Kill this run?", "The run stops now, its open orders are cancelled and the position is closed at market.", "Kill and close"));
  await loadCandles();
  await Promise.all([loadTrades(), loadOrders(), loadEvents(), loadEquity(), loadVersions()]);
  liveEvents(onEvent, liveBadge($("#live")));
});
