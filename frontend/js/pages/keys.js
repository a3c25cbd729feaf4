// Exchange keys: add (checked by the server), a masked list with the check status, re-check, delete.
import { api } from "../api.js";
import { $, el, clear, appShell, start, notice, badge, showFormErrors, clearFormErrors, busy, confirmDialog } from "../ui.js";
import { timeEl } from "../time.js";
import { marketCatalog } from "../markets.js";

const form = $("#key-form");

// The API's fingerprint as it is ("vmPU…A31s": the key's first and last four characters, which the exchange's
// key list shows too; "sha256:…" for short keys): never enough to use the key.
function masked(a) {
  return el("span", { class: "mono", title: "fingerprint of the key (the key itself is never shown)" }, a.fingerprint || "••••••••");
}

async function load() {
  const tbody = clear($("#keys tbody"));
  let page;
  try {
    page = await api("/exchange-accounts");
  } catch (err) {
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, err.detail)));
    return false;
  }
  if (!page.data.length) tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No keys yet. Add one to trade live.")));
  for (const a of page.data) {
    const check = el("button", { type: "button", class: "btn small" }, "Check");
    const del = el("button", { type: "button", class: "btn small danger" }, "Delete");
    check.setAttribute("aria-label", `Check the key ${a.label}`);
    del.setAttribute("aria-label", `Delete the key ${a.label}`);
    check.addEventListener("click", async () => {
      try { await api(`/exchange-accounts/${a.id}/check`, { method: "POST" }); await load(); }
      catch (err) { notice($(".page-status"), "error", err.detail); }
    });
    del.addEventListener("click", async () => {
      if (!(await confirmDialog(`Delete the key “${a.label}”?`, "Runs using it can no longer trade live. The key is erased from Tradefleet (revoke it on the exchange too).", "Delete the key"))) return;
      try { await api(`/exchange-accounts/${a.id}`, { method: "DELETE" }); await load(); }
      catch (err) { notice($(".page-status"), "error", err.detail); }
    });
    tbody.append(el("tr", {}, el("td", {}, a.label), el("td", {}, a.exchange, " ", a.sandbox ? badge("info", "sandbox") : badge("error", "live")),
      el("td", {}, masked(a)),
      el("td", { class: "wrap" }, badge(a.check_status), a.check_message ? el("span", { class: "muted" }, " ", a.check_message) : null),
      el("td", {}, timeEl(a.checked_at)), el("td", {}, el("div", { class: "actions" }, check, del))));
  }
  return true;
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearFormErrors(form);
  const d = new FormData(form);
  const body = { exchange: d.get("exchange"), label: String(d.get("label") || "").trim(), api_key: String(d.get("api_key") || "").trim(),
    secret: String(d.get("secret") || "").trim(), sandbox: $("#sandbox").checked };
  if (d.get("password")) body.password = d.get("password");
  if (d.get("uid")) body.uid = d.get("uid");
  busy(form, async () => {
    try {
      await api("/exchange-accounts", { method: "POST", json: body });
      form.reset();
      $("#sandbox").checked = true;
      notice(form.querySelector(".form-status"), "ok", "Key added. Its check runs now; use Check to see the result.");
      await load();
    } catch (err) {
      showFormErrors(form, err);
    }
  });
});

start(async () => {
  await appShell();
  // The exchanges this platform trades on (EXCHANGES_ENABLED), as the market catalog lists them.
  const catalog = await marketCatalog();
  $("#exchange").append(...catalog.exchanges.map((e) => el("option", { value: e.exchange }, e.exchange)));
  await load();
});
