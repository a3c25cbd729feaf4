"""Background jobs as their senders see them: the Celery application object, the queues and the routing
of every task name to its queue (:mod:`~tradefleet.jobs.queues`), and :func:`~tradefleet.jobs.app.send_task`.

The API, the services and the e-mail module enqueue tasks by name through this package; they never
import the worker (:mod:`tradefleet.worker`), which builds on the same application object and adds the
task modules and beat's schedule. Depends on :mod:`tradefleet.config` only.
"""
