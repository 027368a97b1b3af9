"""Choosing a handler for an event: registration, the route table, invocation. No IO, no Bot.

``router`` registers handlers (one observer per event kind), ``table`` matches an event to
a handler, ``invoke`` runs it (arguments, middleware, error handlers); ``handlers``,
``filters`` and ``commands`` describe what is registered.
"""

from imbot.routing.router import Router

__all__ = ["Router"]
