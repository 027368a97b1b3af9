"""Choosing a handler for an event: registration, the route table, invocation. No IO, no Bot.

``router`` is the ``Router`` users see; it registers through ``observers`` (one per event
kind: the decorator and ``register()``; ``connect`` holds ``on_connect``, ``turns``
``on_turn`` and the ``Turn`` its handlers read) and ``hooks`` (error handlers, middleware,
startup/shutdown hooks) into ``registrations``. When a bot starts, ``table`` compiles the
router tree into what to try for each event, and ``invoke`` runs the chosen handler
(command arguments, middleware, error handlers). ``handlers``,
``filters``, ``commands``, ``middleware`` and ``help`` describe what is registered.
"""

from imbot.routing.router import Router

__all__ = ["Router"]
