// The strategy catalog: each strategy's latest approved version (author, version number), its
// description, parameter forms from its JSON schema, then a paper (or live) run or a backtest with those
// parameters, pinned to that version.
import { api } from "../api.js";
import { $, el, clear, appShell, start, badge, fmtPct, showFormErrors, clearFormErrors, busy, field } from "../ui.js";
import { paramFields, readParams, marketFields } from "../forms.js";
import { marketCatalog } from "../markets.js";

function card(s, accounts, catalog) {
  const prefix = `s-${s.name}`;
  const form = el("form", { novalidate: true, "aria-label": `Run ${s.name}` },
    el("div", { class: "form-status", tabindex: "-1", role: "alert" }),
    el("fieldset", {}, el("legend", {}, "Parameters"), el("div", { class: "form-grid" }, ...paramFields(s.params_schema, prefix))),
    el("fieldset", {}, el("legend", {}, "Market and stake"), el("div", { class: "form-grid" }, ...marketFields(prefix, catalog, { timeframe: s.timeframe }))));
  const modeSelect = el("select", { id: `${prefix}-mode`, name: "mode" }, el("option", { value: "paper" }, "Paper (simulated fills)"));
  const grid = form.querySelectorAll(".form-grid")[1];
  grid.append(field("Mode", modeSelect));
  if (accounts.length) {
    modeSelect.append(el("option", { value: "live" }, "Live (real orders)"));
    const acct = el("select", { id: `${prefix}-acct`, name: "exchange_account_id" },
      ...accounts.map((a) => el("option", { value: a.id }, `${a.label} (${a.exchange}${a.sandbox ? ", sandbox" : ""})`)));
    const wrap = field("Exchange key", acct);
    wrap.hidden = true;
    grid.append(wrap);
    modeSelect.addEventListener("change", () => { wrap.hidden = modeSelect.value !== "live"; });
  }
  const runBtn = el("button", { type: "submit", class: "btn buy" }, "Start paper run");
  modeSelect.addEventListener("change", () => { runBtn.textContent = modeSelect.value === "live" ? "Start live run" : "Start paper run"; });
  const btBtn = el("button", { type: "button", class: "btn" }, "Backtest these settings");
  form.append(el("div", { class: "form-actions" }, runBtn, btBtn));

  btBtn.addEventListener("click", () => {
    const data = new FormData(form);
    const qs = new URLSearchParams({ strategy: s.name, params: JSON.stringify(readParams(form)),
      symbol: data.get("symbol"), timeframe: data.get("timeframe"), stake: data.get("stake") });
    location.assign(`/backtests.html?${qs}`);
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const data = new FormData(form);
    const body = {
      strategy: s.name, params: readParams(form), exchange: data.get("exchange"), symbol: String(data.get("symbol") || "").trim(),
      timeframe: data.get("timeframe"), mode: data.get("mode"), stake: data.get("stake") === "" ? null : Number(data.get("stake")),
    };
    if (s.version_id) body.strategy_version_id = s.version_id;  // the version this card shows
    if (body.mode === "live") body.exchange_account_id = data.get("exchange_account_id");
    busy(form, async () => {
      try {
        const run = await api("/runs", { method: "POST", json: body });
        await api(`/runs/${run.id}/start`, { method: "POST" });
        location.assign(`/run.html?id=${encodeURIComponent(run.id)}`);
      } catch (err) {
        showFormErrors(form, err);
      }
    });
  });

  const meta = el("div", { class: "meta" },
    s.version != null ? badge("ok", `v${s.version}`) : null,
    s.origin === "upload" ? badge("muted", "uploaded") : s.origin === "bundled" ? badge("muted", "bundled") : null,
    badge("info", `timeframe ${s.timeframe}`),
    s.stoploss != null ? badge("warn", `stoploss ${fmtPct(s.stoploss * 100)}`) : null,
    s.startup_candles != null ? badge("muted", `warm-up ${s.startup_candles} candles`) : null);
  return el("article", { class: "panel card", "aria-labelledby": `${prefix}-title`, id: `strategy-${s.name}` },
    el("h2", { id: `${prefix}-title` }, s.name),
    s.author ? el("p", { class: "byline" }, "by ", el("span", { class: "author-name" }, s.author)) : null,
    meta, el("p", { class: "desc" }, s.description || "No description."),
    el("details", {}, el("summary", {}, "Configure and run"), form));
}

start(async () => {
  await appShell();
  const [strategies, accounts, catalog] = await Promise.all([
    api("/strategies"),
    // Without its keys the page still offers paper runs.
    api("/exchange-accounts").then((r) => r.data.filter((a) => a.check_status === "valid")).catch(() => []),
    marketCatalog(),
  ]);
  const root = clear($("#catalog"));
  if (!strategies.length) root.append(el("p", { class: "muted" }, "No strategy is enabled yet."));
  for (const s of strategies) root.append(card(s, accounts, catalog));
  const want = location.hash.slice(1);
  if (want) { const d = document.querySelector(`#strategy-${CSS.escape(want)} details`); if (d) d.open = true; }
});
