"""The loop thread's world: everything here runs on the asyncio loop, in the order data flows.

① :mod:`app.core.api` — login, organisations, Centrifugo tokens (REST)
② :mod:`app.core.service` — one signed-in session; wires the stages below and turns errors
  into UI events; ``TelexService._on_publications`` is where a publication becomes a notice
③ :mod:`app.core.realtime` — one WebSocket for every organisation channel (protocol, client,
  clock watch)
④ :mod:`app.core.policy` — which publications are news
⑤ :mod:`app.core.delivery` — when and as what a notice is shown
⑥ :mod:`app.notify` — the native notification backends (a package of its own: per OS, lazy)

Around them: :mod:`app.core.runtime` composes the stages for a front-end (desktop or
headless), :mod:`app.core.net` is the one HTTP session, :mod:`app.core.updates` the daily release
check, :mod:`app.core.backoff` the retry timing. Nothing here imports :mod:`app.ui` or
:mod:`app.system`.
"""
