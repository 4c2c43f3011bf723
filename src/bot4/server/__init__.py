"""A Binance-compatible network front for bot4's exchange simulator.

``bot4 exchange`` (or ``python -m bot4.server``) serves the subset of Binance's spot API
that ccxt uses (``../shared/docs/binance-spot-subset.md``) in front of
``bot4.sim.matching.MatchingEngine``: REST under ``/api/v3``, market streams under
``/ws``, user data under ``/ws-api/v3``.  A seeded market maker (or a recorded Binance
feed) keeps the books alive, so any ccxt-based bot can paper-trade offline against a
real matching engine.

Module map (imports point downward):

* ``cli``: the ``bot4 exchange`` command; ``app``: wiring, background tasks, signals,
  the state file on shutdown; ``process``: run it as a child process, aim ccxt at it.
* ``rest`` (dispatch, signed endpoints), ``public`` (market data endpoints),
  ``trading`` (order logic without HTTP); ``streams`` (market streams), ``user_stream``
  (WebSocket API user data), ``outbox`` (per-connection send queue and rate limit).
* ``auth`` (signatures, timestamps), ``limits`` (request weight, bans, order counts),
  ``params`` (Binance's parameter rules and error codes).
* ``exchange``: the engine plus what a venue keeps around it (depth update ids, client
  histories, public statistics); ``orders`` (client order and trade records),
  ``market_data`` (klines, tickers).
* ``market_maker`` and ``replay``: the two market sources; ``state``: persistence;
  ``config`` and ``formats``: settings and Binance's number formats.
"""
