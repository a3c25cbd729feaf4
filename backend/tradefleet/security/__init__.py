"""Security primitives: password hashing (:mod:`.passwords`) and access tokens (:mod:`.tokens`).

Later: the key vault (exchange-key encryption), TOTP and rate limits. Nothing here touches the database;
the services combine these primitives with the tables.
"""
