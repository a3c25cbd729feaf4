"""Helpers of the test suite that are not fixtures, in one package (``tests/`` is on ``sys.path``, so
test modules import ``support.<module>``):

``common``      constants of the test settings, ``free_port``, ``wait_for``, ``stack_env``, scratch PostgreSQL
                databases, ``unavailable`` (skip, or fail under ``CI=true``).
``live``        simulator accounts and vault-stored keys for live-trading and chaos tests.
``sse_client``  a server-sent-events reader (``SSEReader``).
``reference``   the tests' own reference computations (recorded candles, SMA crossovers, paper fills).
``stack``       the session's shared stack of real processes (``shared_stack`` fixture).
``figures``     pytest plugin: figures printed in the terminal summary.
``parallel``    pytest plugin: isolation and scheduling under pytest-xdist.
"""
