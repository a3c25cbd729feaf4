// Page chrome (header, navigation, footer), DOM building, form errors and number formatting.

import { api, currentUser, logout } from "./api.js";
import { timeEl } from "./time.js";

/** Build an element: el("a", {href: "/", class: "x"}, "text", child). Text is never parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function $(sel, root = document) { return root.querySelector(sel); }

export function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

// ---- formatting -------------------------------------------------------------------------------------

export function quoteOf(symbol) { return (String(symbol || "").split("/")[1] || "").split(":")[0]; }
export function baseOf(symbol) { return String(symbol || "").split("/")[0] || ""; }

function decimalsFor(v) {
  const a = Math.abs(v);
  if (a === 0) return 2;
  if (a >= 1000) return 2;
  if (a >= 1) return 2;
  if (a >= 0.01) return 4;
  return 8;
}

export function fmtNum(v, decimals) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return "—";
  const n = Number(v);
  const d = decimals ?? decimalsFor(n);
  return n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function fmtMoney(v, ccy) {
  if (v === null || v === undefined) return "—";
  return `${fmtNum(v)}${ccy ? " " + ccy : ""}`;
}

export function fmtAmount(v, ccy) {
  if (v === null || v === undefined) return "—";
  const n = Number(v);
  return `${n.toLocaleString("en-US", { maximumFractionDigits: 8 })}${ccy ? " " + ccy : ""}`;
}

export function fmtPct(v, { signed = true } = {}) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return "—";
  const n = Number(v);
  const s = n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return `${signed && n > 0 ? "+" : ""}${s} %`;
}

export function fmtSigned(v, ccy) {
  if (v === null || v === undefined) return "—";
  const n = Number(v);
  return `${n > 0 ? "+" : ""}${fmtNum(n)}${ccy ? " " + ccy : ""}`;
}

/** A PnL figure: colour plus an arrow and sign in the text (never colour alone). */
export function pnlEl(value, ccy, pct) {
  if (value === null || value === undefined) return el("span", { class: "muted" }, "—");
  const n = Number(value);
  const cls = n > 0 ? "pos" : n < 0 ? "neg" : "flat";
  const arrow = n > 0 ? "▲ " : n < 0 ? "▼ " : "";
  const label = n > 0 ? "profit" : n < 0 ? "loss" : "flat";
  const text = ccy === "%" ? fmtPct(n) : fmtSigned(n, ccy);
  const extra = pct !== undefined && pct !== null ? ` (${fmtPct(pct)})` : "";
  return el("span", { class: `pnl ${cls}`, title: label },
    el("span", { "aria-hidden": "true" }, arrow), el("span", { class: "sr-only" }, label + " "), text + extra);
}

const STATUS_CLASS = {
  ok: "ok", bad: "bad", warn: "warn", info: "info", muted: "muted",
  running: "ok", done: "ok", valid: "ok", active: "ok", filled: "ok", closed: "muted",
  created: "muted", queued: "muted", pending: "warn", open: "info", paused: "warn", stopped: "muted",
  failed: "bad", invalid: "bad", error: "bad", killed: "bad", canceled: "muted", cancelled: "muted",
  rejected: "bad", disabled: "bad", halted: "bad",
  validating: "info", pending_review: "warn", approved: "ok",
};

export function badge(status, text) {
  const s = String(status ?? "—");
  return el("span", { class: `badge ${STATUS_CLASS[s] || "info"}` }, text ?? s.replace(/_/g, " "));
}

// ---- notices and form errors -------------------------------------------------------------------------

/** Replace the content of `region` with a message; kind is "error", "ok", "info" or "warn". */
export function notice(region, kind, text) {
  if (!region) return;
  clear(region);
  if (!text) { region.hidden = true; region.classList.remove("notice", "error", "ok", "info", "warn"); return; }
  region.hidden = false;
  region.classList.remove("error", "ok", "info", "warn");
  region.classList.add("notice", kind);
  region.append(text instanceof Node ? text : document.createTextNode(text));
}

/** Replace the page's content with a not-found panel: ``title`` (the page's heading and the document's
 * title), ``text``, and links back (``[label, href]`` pairs; default: the dashboard). */
export function showNotFound(title, text, links = [["Go to the dashboard", "/"]]) {
  const main = document.querySelector("main");
  if (!main) return;
  document.title = `${title} · Tradefleet`;
  clear(main);
  main.append(el("div", { class: "auth" }, el("section", { class: "panel", "aria-labelledby": "nf-title" },
    el("h1", { id: "nf-title" }, title), el("p", {}, text),
    el("p", { class: "links" }, ...links.map(([label, href]) => el("a", { href }, label))))));
}

export function clearFormErrors(form) {
  form.querySelectorAll(".field-error").forEach((n) => n.remove());
  form.querySelectorAll("[aria-invalid]").forEach((n) => {
    n.removeAttribute("aria-invalid");
    const ids = (n.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.startsWith("err-"));
    if (ids.length) n.setAttribute("aria-describedby", ids.join(" ")); else n.removeAttribute("aria-describedby");
  });
  const status = form.querySelector(".form-status");
  if (status) notice(status, "", "");
}

let errSeq = 0;

function controlFor(form, field) {
  if (!field) return null;
  const candidates = [field, field.replace(/^body\./, ""), field.replace(/^(query|path)\./, "")];
  for (const name of candidates) {
    const c = form.querySelector(`[name="${CSS.escape(name)}"]`) || form.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (c) return c;
  }
  return null;
}

/** Show an ApiError on a form: each `errors[].message` next to the control named by `field`, the
 * rest (and `detail`) in the form's `.form-status` region. The first invalid control gets focus. */
export function showFormErrors(form, err) {
  clearFormErrors(form);
  const status = form.querySelector(".form-status");
  const unplaced = [];
  let first = null;
  for (const e of (err && err.errors) || []) {
    const control = controlFor(form, e.field);
    if (!control) { unplaced.push(e.field && e.field !== "body" ? `${e.field}: ${e.message}` : e.message); continue; }
    const id = `err-${++errSeq}`;
    const msg = el("p", { class: "field-error", id }, e.message);
    const wrap = control.closest(".field") || control.parentElement;
    wrap.append(msg);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", `${control.getAttribute("aria-describedby") || ""} ${id}`.trim());
    first = first || control;
  }
  const summary = [err && err.detail, ...unplaced].filter(Boolean);
  if (status) notice(status, "error", summary.join(" — ") || "Something went wrong.");
  if (first) first.focus();
  else if (status) status.focus();
}

/** Disable a form's submit button while `work()` runs. */
export async function busy(form, work) {
  const buttons = form.querySelectorAll("button[type=submit], button:not([type])");
  buttons.forEach((b) => { b.disabled = true; b.setAttribute("aria-busy", "true"); });
  try {
    return await work();
  } finally {
    buttons.forEach((b) => { b.disabled = false; b.removeAttribute("aria-busy"); });
  }
}

/** A labelled form field: returns the wrapper; `control` is an element with a name and id. */
export function field(labelText, control, hint) {
  const id = control.id || `f-${control.name || ""}-${++errSeq}`.replace(/[^\w-]/g, "-");
  control.id = id;
  const wrap = el("div", { class: "field" }, el("label", { for: id }, labelText), control);
  if (hint) {
    const hid = `${id}-hint`;
    wrap.append(el("p", { class: "hint", id: hid }, hint));
    control.setAttribute("aria-describedby", hid);
  }
  return wrap;
}

// ---- a modal confirmation (native <dialog>) --------------------------------------------------------

export function confirmDialog(title, message, confirmText = "Confirm", danger = true) {
  return new Promise((resolve) => {
    const dlg = el("dialog", { class: "confirm", "aria-labelledby": "dlg-title" },
      el("h2", { id: "dlg-title" }, title), el("p", {}, message));
    const cancel = el("button", { type: "button", class: "btn" }, "Cancel");
    const ok = el("button", { type: "button", class: danger ? "btn danger" : "btn primary" }, confirmText);
    dlg.append(el("div", { class: "actions" }, cancel, ok));
    document.body.append(dlg);
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    cancel.addEventListener("click", () => done(false));
    ok.addEventListener("click", () => done(true));
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    dlg.showModal();
    cancel.focus();
  });
}

// ---- the page shell ----------------------------------------------------------------------------------

const TRADER_NAV = [
  ["/", "Dashboard"], ["/strategies.html", "Strategies"], ["/backtests.html", "Backtests"],
  ["/keys.html", "Exchange keys"], ["/account.html", "Account"],
];
// Authors (and admins) publish strategies: their uploads page sits after the catalog.
const AUTHOR_NAV = [["/author.html", "Uploads"]];
const ADMIN_NAV = [
  ["/admin/", "Users"], ["/admin/runs.html", "All runs"], ["/admin/strategies.html", "Strategies"],
  ["/admin/strategy-versions.html", "Reviews"],
  ["/admin/system.html", "System"], ["/admin/audit.html", "Audit log"],
];

function brand() {
  return el("a", { href: "/", class: "brand" }, el("span", { class: "logo", "aria-hidden": "true" }, "▲"), "Tradefleet");
}

function footer() {
  const f = document.querySelector("footer.site") || document.body.appendChild(el("footer", { class: "site" }));
  clear(f).append(el("p", {}, "Tradefleet · paper and live crypto strategies · ",
    el("a", { href: "https://www.tradingview.com/lightweight-charts/", rel: "noopener" }, "Charts by TradingView Lightweight Charts")));
}

/** For signed-out pages (login, sign-up...): the brand only. */
export function publicShell() {
  const header = document.querySelector("header.topbar");
  clear(header).append(el("div", { class: "bar" }, brand()));
  footer();
}

/**
 * For signed-in pages: fetch the user (redirecting to login without a session), draw the header with
 * the navigation (admin section for admins) and return the user. `admin: true` pages require an admin.
 */
export async function appShell({ admin = false } = {}) {
  const header = document.querySelector("header.topbar");
  footer();
  const me = await currentUser();
  const isAdmin = me.role === "admin";
  const path = location.pathname.replace(/index\.html$/, "");
  const link = ([href, text]) => el("li", {}, el("a", { href, "aria-current": path === href ? "page" : null }, text));
  const nav = el("nav", { "aria-label": "Main", id: "main-nav" },
    el("ul", {}, ...TRADER_NAV.slice(0, 2).map(link), ...(isAdmin || me.role === "author" ? AUTHOR_NAV : []).map(link),
      ...TRADER_NAV.slice(2).map(link)),
    isAdmin ? el("ul", { class: "admin-links", "aria-label": "Admin" }, el("li", { class: "sep", "aria-hidden": "true" }, "Admin"), ...ADMIN_NAV.map(link)) : null);
  const toggle = el("button", { type: "button", class: "btn nav-toggle", "aria-expanded": "false", "aria-controls": "main-nav" }, "Menu");
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    nav.classList.toggle("open", open);
  });
  const out = el("button", { type: "button", class: "btn ghost" }, "Sign out");
  out.addEventListener("click", () => logout());
  clear(header).append(el("div", { class: "bar" }, brand(), toggle, nav,
    el("div", { class: "who" }, el("span", { class: "email", title: me.email }, me.email), isAdmin ? badge("admin", "admin") : null, out)));
  await haltBanner();
  if (admin && !isAdmin) {
    const main = document.querySelector("main");
    clear(main).append(el("h1", {}, "Admins only"), el("p", { class: "notice error" }, "This page is for administrators. ", el("a", { href: "/" }, "Back to the dashboard")));
    throw new Error("not an admin");
  }
  return me;
}

/** While an admin halts live trading (`GET /trading/halt`), a banner at the top of the page says so, with
 * the admin's reason and since when. A failed look-up shows nothing (the page's own requests report errors). */
async function haltBanner() {
  const main = document.querySelector("main");
  if (!main) return;
  main.querySelector(".halt-banner")?.remove();
  let halt;
  try { halt = await api("/trading/halt"); } catch { return; }
  if (!halt.halted) return;
  const banner = el("div", { class: "notice warn halt-banner", role: "status" },
    el("strong", {}, "Live trading is halted by an admin"), halt.reason ? `: ${halt.reason}` : "",
    halt.at ? el("span", {}, " (since ", timeEl(halt.at), ")") : "",
    ". Live runs send no new orders until it is lifted; paper runs and backtests carry on.");
  main.prepend(banner);
}

/** Scrollable boxes (wide tables, the events log, error listings) can be scrolled from the keyboard:
 * each is a focusable region named after its section's heading. */
export function scrollRegions(root = document) {
  root.querySelectorAll(".table-wrap, .log, pre").forEach((box) => {
    if (box.hasAttribute("tabindex")) return;
    const heading = box.closest("section, article, .panel")?.querySelector("h2, h3");
    box.setAttribute("tabindex", "0");
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", `${heading ? heading.textContent.trim() : "Details"} (scrollable)`);
  });
}

/** Run a page's async main and show any unexpected failure inline (never an uncaught rejection). */
export function start(main) {
  scrollRegions();
  // `body[data-ready]` marks a page whose first load finished (tests and screenshots wait for it).
  const ready = () => { scrollRegions(); document.body.dataset.ready = "true"; };
  main().then(ready).catch((err) => {
    ready();
    if (err && (err.status === 401 || err.message === "not an admin")) return;
    const region = document.querySelector(".page-status");
    if (region) notice(region, "error", (err && err.detail) || (err && err.message) || "Something went wrong.");
  });
}
