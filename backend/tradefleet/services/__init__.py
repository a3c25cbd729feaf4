"""Domain operations: keyword-only functions, session first, and the only place that commits.

Services raise :class:`tradefleet.api.errors.DomainError` subclasses; the API turns them into replies.
"""
