// Admin: system health (GET /admin/system: workers, queue depth, database, Redis, tick lag) and /health.
import { api } from "../api.js";
import { $, el, clear, appShell, start, badge, fmtNum } from "../ui.js";

const GOOD = new Set(["ok", "up", "alive", "healthy", true]);
const BAD = new Set(["down", "error", "failed", "unreachable", "dead", false]);

function value(v) {
  if (v === null || v === undefined) return el("span", { class: "muted" }, "—");
  if (typeof v === "boolean" || typeof v === "string") {
    if (GOOD.has(v)) return badge("ok", String(v === true ? "yes" : v));
    if (BAD.has(v)) return badge("bad", String(v === false ? "no" : v));
    return String(v);
  }
  if (typeof v === "number") return el("span", { class: "mono" }, Number.isInteger(v) ? String(v) : fmtNum(v, 3));
  if (Array.isArray(v)) {
    if (!v.length) return el("span", { class: "muted" }, "none");
    return el("ul", {}, ...v.map((x) => el("li", {}, value(x))));
  }
  return kv(v);
}

const label = (k) => k.replace(/_/g, " ").replace(/\bs$/, " (s)").replace(/\bms\b/, "(ms)").replace(/_s$/, " (s)");

function kv(obj) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of Object.entries(obj)) dl.append(el("dt", {}, label(k)), el("dd", {}, value(v)));
  return dl;
}

function tiles(sys) {
  const dl = clear($("#health-tiles"));
  const tile = (k, v) => dl.append(el("div", { class: "tile" }, el("dt", {}, k), el("dd", {}, v)));
  for (const [k, v] of Object.entries(sys)) {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const st = v.status ?? v.ok ?? v.alive;
      tile(label(k), st !== undefined ? value(st) : `${Object.keys(v).length} fields`);
    } else tile(label(k), value(v));
  }
}

async function load() {
  const sys = clear($("#system"));
  try {
    const s = await api("/admin/system");
    tiles(s);
    sys.append(kv(s));
  } catch (err) {
    sys.append(el("p", { class: "notice info" }, err.status === 501 ? "The system report (GET /admin/system) is not available on this server yet; the health check is on the right." : err.detail));
  }
  const h = clear($("#health"));
  try { h.append(kv(await api("/health", { auth: false }))); }
  catch (err) { h.append(el("p", { class: "notice error" }, err.detail)); }
}

start(async () => {
  await appShell({ admin: true });
  $("#reload").addEventListener("click", () => load());
  await load();
});
