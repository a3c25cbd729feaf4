"""The Celery app and its tasks: thin wrappers over the engine and the services."""
