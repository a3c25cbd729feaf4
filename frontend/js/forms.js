// Forms generated from a strategy's parameter JSON schema, and the market fields runs and backtests share
// (their options from the market catalog, js/markets.js).
import { el, field, clear, fmtAmount } from "./ui.js";

function labelFor(name) {
  return name.replace(/_/g, " ").replace(/\bpct\b/, "%").replace(/^./, (c) => c.toUpperCase());
}

/**
 * Controls for each property of `schema` (integer, number, boolean, string, enum), named
 * `params.<name>` so the API's `params.<name>` validation errors land next to them. `prefix` keeps ids
 * unique when several forms are on one page.
 */
export function paramFields(schema, prefix, values = {}) {
  const out = [];
  for (const [name, prop] of Object.entries((schema && schema.properties) || {})) {
    const id = `${prefix}-p-${name}`;
    const value = values[name] ?? prop.default;
    let control;
    if (Array.isArray(prop.enum)) {
      control = el("select", { id, name: `params.${name}`, "data-type": prop.type || "string" },
        ...prop.enum.map((v) => el("option", { value: String(v), selected: String(v) === String(value) }, String(v))));
    } else if (prop.type === "boolean") {
      control = el("input", { id, name: `params.${name}`, type: "checkbox", checked: Boolean(value), "data-type": "boolean" });
      const wrap = el("div", { class: "field check" }, control, el("label", { for: id }, labelFor(name)));
      if (prop.description) wrap.append(el("p", { class: "hint", id: `${id}-hint` }, prop.description));
      out.push(wrap);
      continue;
    } else if (prop.type === "integer" || prop.type === "number") {
      control = el("input", {
        id, name: `params.${name}`, type: "number", inputmode: prop.type === "integer" ? "numeric" : "decimal",
        min: prop.minimum, max: prop.maximum, step: prop["x-step"] ?? (prop.type === "integer" ? 1 : "any"),
        value: value ?? "", "data-type": prop.type, required: true,
      });
    } else {
      control = el("input", { id, name: `params.${name}`, value: value ?? "", "data-type": "string" });
    }
    const range = prop.minimum !== undefined || prop.maximum !== undefined ? ` (${prop.minimum ?? "…"} to ${prop.maximum ?? "…"})` : "";
    out.push(field(labelFor(prop.title || name), control, (prop.description || "") + range));
  }
  if (!out.length) out.push(el("p", { class: "muted" }, "This strategy has no parameters."));
  return out;
}

/** The `params` object from a form's `params.*` controls, typed from their schema. Blank numbers are
 * sent as given (the API names the field in its error). */
export function readParams(form) {
  const params = {};
  form.querySelectorAll("[name^='params.']").forEach((c) => {
    const name = c.name.slice("params.".length);
    const type = c.dataset.type;
    if (type === "boolean") params[name] = c.checked;
    else if (type === "integer" || type === "number") params[name] = c.value === "" ? null : Number(c.value);
    else params[name] = c.value;
  });
  return params;
}

function options(select, values, wanted) {
  clear(select).append(...values.map((v) => el("option", { value: v }, v)));
  if (values.includes(wanted)) select.value = wanted;
}

/**
 * Exchange, symbol (free text with the catalog's symbols as suggestions), timeframe and stake fields,
 * from `catalog` (GET /markets). `timeframe` and `symbol` are preselected when the exchange offers them
 * (else its first); `fixedLength` keeps only fixed-length timeframes (backtests need them). The stake's
 * hint names the chosen market's minimum order.
 */
export function marketFields(prefix, catalog, { timeframe, symbol, stake = 10000, fixedLength = false } = {}) {
  const exchanges = (catalog && catalog.exchanges) || [];
  const first = exchanges.find((e) => e.loaded) || exchanges[0] || { exchange: "", loaded: false, timeframes: [], markets: [] };
  const exchangeSelect = el("select", { id: `${prefix}-exchange`, name: "exchange" });
  options(exchangeSelect, exchanges.map((e) => e.exchange), first.exchange);
  const listId = `${prefix}-symbols`;
  const symbolInput = el("input", { id: `${prefix}-symbol`, name: "symbol", list: listId, required: true, autocomplete: "off", spellcheck: "false" });
  const datalist = el("datalist", { id: listId });
  const timeframeSelect = el("select", { id: `${prefix}-timeframe`, name: "timeframe" });
  const stakeInput = el("input", { id: `${prefix}-stake`, name: "stake", type: "number", min: 1, step: "any", value: stake, required: true, inputmode: "decimal" });
  const stakeField = field("Stake (quote currency)", stakeInput, " ");
  const stakeHint = stakeField.querySelector(".hint");
  const status = el("p", { class: "notice warn", role: "status", hidden: true });

  const entry = () => exchanges.find((e) => e.exchange === exchangeSelect.value) || first;
  function showMinimum() {
    const market = entry().markets.find((m) => m.symbol === symbolInput.value.trim());
    stakeHint.textContent = market && market.min_cost ? `At least ${fmtAmount(market.min_cost, market.quote)}, the market's minimum order.` : "";
  }
  function fill() {
    const e = entry();
    const symbols = e.markets.map((m) => m.symbol);
    clear(datalist).append(...symbols.map((v) => el("option", { value: v })));
    if (!symbols.includes(symbolInput.value.trim())) symbolInput.value = symbols.includes(symbol) ? symbol : (symbols[0] || "");
    const tfs = e.timeframes.filter((tf) => !fixedLength || tf.fixed_length).map((tf) => tf.timeframe);
    options(timeframeSelect, tfs, tfs.includes(timeframeSelect.value) ? timeframeSelect.value : timeframe);
    status.hidden = e.loaded;
    status.textContent = e.loaded ? "" : `The markets of ${e.exchange || "the exchange"} are not loaded yet: reload this page in a moment.`;
    showMinimum();
  }
  exchangeSelect.addEventListener("change", fill);
  symbolInput.addEventListener("input", showMinimum);
  fill();
  return [
    status,
    field("Exchange", exchangeSelect),
    field("Symbol", symbolInput), datalist,
    field("Timeframe", timeframeSelect),
    stakeField,
  ];
}
