"""Security primitives: password hashing (:mod:`.passwords`) and access tokens (:mod:`.tokens`).

Also rate limits (:mod:`.ratelimit`) and the login lockout (:mod:`.lockout`, which only reads the
database through a session it is given, to find whom to notify). Later: the key vault (exchange-key
encryption). The services combine these primitives with the tables.
"""
