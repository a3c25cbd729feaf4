// Admin: system health. GET /admin/system: database, Redis, broker queues, workers alive, runs by status
// and the engine's tick lag (per running run); GET /health beside it.
import { api } from "../api.js";
import { $, el, clear, appShell, start, badge, fmtNum, scrollRegions } from "../ui.js";
import { fmtDuration, timeEl } from "../time.js";

const up = (ok, yes = "ok", no = "down") => (ok === null || ok === undefined ? badge("muted", "n/a") : ok ? badge("ok", yes) : badge("bad", no));

function table(caption, head, rows, empty) {
  const t = el("table", {}, el("caption", {}, caption),
    el("thead", {}, el("tr", {}, ...head.map(([h, num]) => el("th", { scope: "col", class: num ? "num" : null }, h)))),
    el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: head.length, class: "empty" }, empty))])));
  return el("div", { class: "table-wrap" }, t);
}

function tile(dl, label, ...value) { dl.append(el("div", { class: "tile" }, el("dt", {}, label), el("dd", {}, ...value))); }

function render(s) {
  const dl = clear($("#health-tiles"));
  const q = (s.broker && s.broker.queues) || [];
  const depth = q.reduce((n, x) => n + (Number(x.depth) || 0), 0);
  tile(dl, "Database", up(s.database && s.database.ok), " ", (s.database && s.database.dialect) || "");
  tile(dl, "Redis", s.redis && s.redis.configured === false ? badge("muted", "not used") : up(s.redis && s.redis.ok), " ", (s.redis && s.redis.version) || "");
  tile(dl, "Broker", up(s.broker && s.broker.ok), " ", (s.broker && s.broker.transport) || "");
  const sb = s.sandbox || {};
  tile(dl, "Strategy sandbox", sb.available ? badge("ok", sb.mode || "bwrap") : sb.ok ? badge("warn", "unsandboxed") : badge("bad", "unavailable"));
  tile(dl, "Workers alive", s.workers ? (s.workers.alive > 0 ? badge("ok", String(s.workers.alive)) : badge("bad", "0")) : "—");
  tile(dl, "Queue depth", `${depth} waiting`);
  tile(dl, "Runs running", s.runs ? String(s.runs.running ?? 0) : "—");
  const lag = s.tick_lag || {};
  tile(dl, "Max time since tick", lag.max_seconds_since_tick == null ? "—" : `${fmtNum(lag.max_seconds_since_tick, 1)} s`);
  tile(dl, "Max candles behind", lag.max_candles_behind == null ? "—" : String(lag.max_candles_behind));

  const root = clear($("#system"));
  root.append(el("p", { class: "muted" }, "Checked ", timeEl(s.checked_at, { seconds: true })));
  for (const [part, v] of Object.entries({ database: s.database, redis: s.redis, broker: s.broker })) {
    if (v && v.error) root.append(el("p", { class: "notice error" }, `${part}: ${v.error}`));
  }
  if (sb.reason) root.append(el("p", { class: "notice error" }, `Strategy sandbox: ${sb.reason}`));
  root.append(table("Queues", [["Queue"], ["Waiting", true]], q.map((x) => el("tr", {}, el("td", {}, x.name), el("td", { class: "num" }, String(x.depth)))), "No queue reported."));
  const workers = (s.workers && s.workers.workers) || [];
  root.append(table(`Workers (stale after ${s.workers ? s.workers.stale_after_s : "—"} s without a beat)`, [["Host"], ["PID", true], ["Last beat"], ["State"]],
    workers.map((w) => el("tr", {}, el("td", {}, w.hostname), el("td", { class: "num" }, String(w.pid ?? "—")), el("td", {}, timeEl(w.beat_at, { seconds: true })), el("td", {}, up(w.alive, "alive", "stale")))), "No worker has reported."));
  if (s.runs) {
    root.append(table("Runs by status", [["Status"], ["Runs", true]], Object.entries(s.runs).map(([k, n]) => el("tr", {}, el("td", {}, badge(k)), el("td", { class: "num" }, String(n)))), "No runs."));
  }
  const lagRows = (lag.runs || []).map((r) => el("tr", {}, el("td", {}, r.owner_email || "—"), el("td", {}, r.strategy), el("td", {}, r.market),
    el("td", {}, timeEl(r.last_tick_at, { seconds: true })), el("td", { class: "num" }, r.seconds_since_tick == null ? "—" : `${fmtNum(r.seconds_since_tick, 1)} s`),
    el("td", { class: "num" }, r.candles_behind == null ? "—" : String(r.candles_behind)), el("td", { class: "num" }, r.candle_age_s == null ? "—" : fmtDuration(r.candle_age_s))));
  const lagBox = clear($("#lag"));
  lagBox.append(table("Running runs, most behind first", [["Owner"], ["Strategy"], ["Market"], ["Last tick"], ["Since tick", true], ["Candles behind", true], ["Candle age", true]], lagRows, "No running run."));
}

function health(h) {
  const root = clear($("#health"));
  const dl = el("dl", { class: "kv" });
  dl.append(el("dt", {}, "Overall"), el("dd", {}, up(h.status === "ok", "ok", String(h.status))));
  for (const [k, v] of Object.entries(h)) {
    if (k === "status") continue;
    const ok = v && typeof v === "object" ? (v.ok ?? (v.alive !== undefined ? v.alive > 0 : v.status === "ok")) : v;
    const extra = v && typeof v === "object" ? Object.entries(v).filter(([kk]) => kk !== "ok" && kk !== "status").map(([kk, vv]) => `${kk.replace(/_/g, " ")}: ${typeof vv === "object" ? JSON.stringify(vv) : vv}`).join(" · ") : "";
    dl.append(el("dt", {}, k), el("dd", {}, up(Boolean(ok)), " ", el("span", { class: "muted" }, extra)));
  }
  root.append(dl);
}

async function load() {
  try { render(await api("/admin/system")); }
  catch (err) { clear($("#system")).append(el("p", { class: "notice info" }, err.detail)); }
  try { health(await api("/health", { auth: false })); }
  catch (err) { clear($("#health")).append(el("p", { class: "notice error" }, err.detail)); }
  scrollRegions();
}

start(async () => {
  await appShell({ admin: true });
  $("#reload").addEventListener("click", () => load());
  await load();
});
