// Backtests: the form (strategy, its parameters from the JSON schema, market, range, stake, fee), the
// progress bar fed by the event stream's `backtest` events, then candles with trade markers, the equity
// curve, the metrics and the trade table.
import { api } from "../api.js";
import { $, el, clear, appShell, start, notice, badge, pnlEl, fmtMoney, fmtAmount, fmtNum, fmtPct, quoteOf, baseOf, showFormErrors, clearFormErrors, busy, field } from "../ui.js";
import { fmtDuration, timeEl, timeframeSeconds, utcDay } from "../time.js";
import { paramFields, readParams, marketFields } from "../forms.js";
import { marketCatalog, exchangeEntry } from "../markets.js";
import { candleChart, equityChart } from "../charts.js";
import { liveEvents, liveBadge } from "../events.js";

const query = new URLSearchParams(location.search);
let strategies = [];
let catalog = null;
let current = null; // the backtest shown
let charts = null;

/** Candles the result chart shows (the newest of the tested range), and backtests the list shows. */
const CHART_CANDLES = 5000;
const LIST_LIMIT = 20;

/** The backtest's candle length in seconds, from the market catalog (0 when the catalog lacks it). */
function barSeconds(bt) {
  const entry = exchangeEntry(catalog, bt.exchange);
  return timeframeSeconds(entry && entry.timeframes, bt.timeframe);
}

function renderParams(name, values = {}) {
  const s = strategies.find((x) => x.name === name);
  const fs = $("#bt-params");
  clear(fs).append(el("legend", {}, "Strategy parameters"),
    el("div", { class: "form-grid" }, ...paramFields(s ? s.params_schema : {}, "bt", values)));
  return s;
}

function buildForm() {
  const label = (s) => s.name + (s.version != null ? ` v${s.version}` : "") + (s.author ? ` · by ${s.author}` : "");
  const sel = el("select", { id: "bt-strategy", name: "strategy" }, ...strategies.map((s) => el("option", { value: s.name }, label(s))));
  const want = query.get("strategy");
  if (want && strategies.some((s) => s.name === want)) sel.value = want;
  const s = strategies.find((x) => x.name === sel.value);
  const market = marketFields("bt", catalog, { timeframe: query.get("timeframe") || (s && s.timeframe), symbol: query.get("symbol"),
    stake: query.get("stake") || 10000, fixedLength: true });
  const grid = clear($("#bt-market"));
  grid.append(field("Strategy", sel), ...market,
    field("From (UTC)", el("input", { id: "bt-start", name: "start", type: "date", value: "2024-01-01", required: true })),
    field("To (UTC, exclusive)", el("input", { id: "bt-end", name: "end", type: "date", value: "2024-04-01", required: true })),
    field("Fee per fill (%)", el("input", { id: "bt-fee", name: "fee", type: "number", min: 0, max: 5, step: "any", placeholder: "market's taker fee", inputmode: "decimal" }), "Empty: the exchange's taker fee (0.1 % on Binance spot)."));
  let values = {};
  try { values = JSON.parse(query.get("params") || "{}"); } catch { values = {}; }
  renderParams(sel.value, values);
  sel.addEventListener("change", () => {
    const picked = renderParams(sel.value);
    const tf = $("#bt-timeframe");
    if (picked && [...tf.options].some((o) => o.value === picked.timeframe)) tf.value = picked.timeframe;
  });
}

function submit(ev) {
  ev.preventDefault();
  const form = $("#bt-form");
  clearFormErrors(form);
  const d = new FormData(form);
  const body = {
    strategy: d.get("strategy"), params: readParams(form), exchange: d.get("exchange"),
    symbol: String(d.get("symbol") || "").trim(), timeframe: d.get("timeframe"), start: utcDay(d.get("start")), end: utcDay(d.get("end")),
    stake: d.get("stake") === "" ? null : Number(d.get("stake")),
  };
  if (d.get("fee") !== "") body.fee = Number(d.get("fee")) / 100;
  const picked = strategies.find((x) => x.name === body.strategy);
  if (picked && picked.version_id) body.strategy_version_id = picked.version_id;  // the version the list shows
  busy(form, async () => {
    try {
      const bt = await api("/backtests", { method: "POST", json: body });
      history.replaceState(null, "", `?id=${encodeURIComponent(bt.id)}`);
      current = bt; // before any await: a `backtest` event may arrive at once
      await show(bt.id, bt);
      loadList();
    } catch (err) {
      showFormErrors(form, err);
    }
  });
}

function setProgress(bt) {
  const row = $("#bt-progress");
  const status = $("#bt-status");
  if (bt.status === "queued" || bt.status === "running") {
    row.hidden = false;
    $("#bt-bar").value = bt.progress || 0;
    $("#bt-progress-label").textContent = bt.status === "queued" ? "Queued" : `${bt.progress || 0} %${bt.stage ? " · " + bt.stage : ""}`;
    notice(status, "", "");
  } else {
    row.hidden = true;
    if (bt.status === "failed") notice(status, "error", `The backtest failed: ${bt.error || "no reason given"}`);
    else notice(status, "", "");
  }
}

const METRICS = [
  ["total_return_pct", "Total return", (v) => pnlEl(v, "%")], ["cagr_pct", "CAGR", (v) => pnlEl(v, "%")],
  ["max_drawdown_pct", "Max drawdown", (v) => fmtPct(v == null ? v : -Math.abs(v))], ["sharpe", "Sharpe", (v) => fmtNum(v, 2)],
  ["sortino", "Sortino", (v) => fmtNum(v, 2)], ["win_rate_pct", "Win rate", (v) => fmtPct(v, { signed: false })],
  ["profit_factor", "Profit factor", (v) => fmtNum(v, 2)], ["trades", "Trades", (v) => (v == null ? "—" : String(v))],
  ["exposure_pct", "Exposure", (v) => fmtPct(v, { signed: false })], ["avg_trade_duration_s", "Avg. trade", fmtDuration],
];

async function renderDone(bt) {
  const q = quoteOf(bt.symbol), b = baseOf(bt.symbol);
  $("#bt-done").hidden = false;
  const m = bt.metrics || {};
  const tiles = clear($("#bt-metrics"));
  const tile = (label, value) => tiles.append(el("div", { class: "tile" }, el("dt", {}, label), el("dd", {}, value)));
  tile("Final equity", fmtMoney(m.final_equity, q));
  for (const [k, label, f] of METRICS) tile(label, f(m[k]));
  tile("Fees paid", fmtMoney(m.fees_paid, q));
  if (bt.lookahead_flagged) notice($("#bt-status"), "warn", "Look-ahead check: this strategy's signals change when future candles are removed. Its results are not trustworthy.");

  if (charts) { charts.candles.chart.remove(); charts.equity.chart.remove(); }
  charts = { candles: candleChart($("#bt-candles"), { barSeconds: barSeconds(bt) }), equity: equityChart($("#bt-equity")) };
  charts.equity.setPoints(bt.equity || []);
  const tbody = clear($("#bt-trades tbody"));
  const trades = bt.trades || [];
  if (!trades.length) tbody.append(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No trades in this range.")));
  trades.forEach((t, i) => tbody.append(el("tr", {},
    el("td", { class: "num" }, String(i + 1)), el("td", {}, timeEl(t.entry_time_ms)), el("td", {}, t.exit_time_ms ? timeEl(t.exit_time_ms) : badge("open")),
    el("td", { class: "num" }, fmtMoney(t.entry_price, q)), el("td", { class: "num" }, fmtMoney(t.exit_price, q)),
    el("td", { class: "num" }, fmtAmount(t.amount, b)), el("td", { class: "num" }, fmtMoney(t.fees, q)),
    el("td", { class: "num" }, pnlEl(t.pnl, q, t.pnl_pct)), el("td", {}, t.exit_reason || (t.is_open ? "still open" : "")))));

  const note = $("#bt-candles-note");
  try {
    const rows = await api(`/backtests/${bt.id}/candles`, { query: { limit: CHART_CANDLES } });
    const list = Array.isArray(rows) ? rows : rows.candles || rows.data || [];
    charts.candles.setCandles(list);
    notice(note, rows.truncated ? "info" : "", rows.truncated ? `The range is long: the chart shows its last ${list.length} candles (the metrics and trades cover all of it).` : "");
  } catch (err) { notice(note, "warn", err.detail); }
  charts.candles.setTrades(bt.trades || []);
}

async function show(id, known) {
  const bt = known && known.status === "done" ? known : await api(`/backtests/${id}`);
  current = bt;
  const section = $("#bt-result");
  section.hidden = false;
  $("#bt-result-title").textContent = `Result: ${bt.strategy}${bt.strategy_version != null ? ` v${bt.strategy_version}` : ""} on ${bt.symbol} ${bt.timeframe}`;
  setProgress(bt);
  if (bt.status === "done") await renderDone(bt); else $("#bt-done").hidden = true;
}

let listSeq = 0;

async function loadList() {
  const seq = ++listSeq;
  const page = await api("/backtests", { query: { limit: LIST_LIMIT } });
  if (seq !== listSeq) return; // a newer reload is on its way
  const tbody = clear($("#bt-list tbody"));
  if (!page.data.length) tbody.append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No backtests yet.")));
  for (const bt of page.data) {
    tbody.append(el("tr", {}, el("td", {}, el("a", { href: `?id=${encodeURIComponent(bt.id)}`, "data-id": bt.id }, bt.strategy + (bt.strategy_version != null ? ` v${bt.strategy_version}` : ""))),
      el("td", {}, `${bt.symbol} · ${bt.timeframe}`), el("td", {}, badge(bt.status)),
      el("td", { class: "num" }, bt.metrics ? pnlEl(bt.metrics.total_return_pct, "%") : "—")));
  }
}

start(async () => {
  await appShell();
  [strategies, catalog] = await Promise.all([api("/strategies"), marketCatalog()]);
  buildForm();
  $("#bt-form").addEventListener("submit", submit);
  const badgeFn = liveBadge($("#live"));
  liveEvents((type, data) => {
    if (type !== "backtest" || !current || !data || data.backtest_id !== current.id) return;
    if (data.status === "done" || data.status === "failed") { show(current.id).then(loadList).catch(() => {}); return; }
    setProgress({ ...current, ...data, id: current.id });
  }, badgeFn);
  await loadList();
  if (query.get("id")) await show(query.get("id"));
});
