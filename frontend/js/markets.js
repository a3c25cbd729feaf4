// The market catalog (`GET /markets`): each enabled exchange's active symbols with their rules and the
// timeframes it serves. Forms offer exactly what the API accepts; nothing here lists symbols or timeframes.

import { api } from "./api.js";

let catalogPromise = null;

/** The catalog {exchanges: [{exchange, loaded, timeframes: [{timeframe, length_ms, fixed_length}],
 * markets: [{symbol, base, quote, taker, maker, amount_step, price_step, min_amount, min_cost}]}]},
 * fetched once per page. */
export function marketCatalog() {
  if (!catalogPromise) {
    catalogPromise = api("/markets").catch((err) => { catalogPromise = null; throw err; });
  }
  return catalogPromise;
}

/** The catalog entry of `exchange`, or null when it is not enabled. */
export function exchangeEntry(catalog, exchange) {
  return (catalog && catalog.exchanges.find((e) => e.exchange === exchange)) || null;
}
