"""One module per resource, each exporting ``router``; :mod:`tradefleet.api.main` lists which are public."""
