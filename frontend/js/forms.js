// Forms generated from a strategy's parameter JSON schema, and the market fields runs and backtests share.
import { el, field } from "./ui.js";

export const SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "DOGE/USDT"];
export const TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d"];

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

function select(id, name, options, selected) {
  return el("select", { id, name }, ...options.map((o) => el("option", { value: o, selected: o === selected }, o)));
}

/** Exchange, symbol (free text with suggestions), timeframe and stake fields. */
export function marketFields(prefix, { timeframe = "1h", stake = 10000 } = {}) {
  const listId = `${prefix}-symbols`;
  const tfs = TIMEFRAMES.includes(timeframe) ? TIMEFRAMES : [timeframe, ...TIMEFRAMES];
  return [
    field("Exchange", select(`${prefix}-exchange`, "exchange", ["binance"], "binance")),
    field("Symbol", el("input", { id: `${prefix}-symbol`, name: "symbol", value: "BTC/USDT", list: listId, required: true, autocomplete: "off", spellcheck: "false" })),
    el("datalist", { id: listId }, ...SYMBOLS.map((s) => el("option", { value: s }))),
    field("Timeframe", select(`${prefix}-timeframe`, "timeframe", tfs, timeframe)),
    field("Stake (quote currency)", el("input", { id: `${prefix}-stake`, name: "stake", type: "number", min: 1, step: "any", value: stake, required: true, inputmode: "decimal" })),
  ];
}
