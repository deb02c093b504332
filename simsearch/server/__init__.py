"""The expert's workbench: ``simsearch serve``, an HTTP API over an index and a review page.

The top layer, beside the command line: it may use every stage but evaluation, and only
the command line imports it. :func:`~simsearch.server.run.serve` starts it;
:func:`~simsearch.server.app.create_app` builds the app over a
:class:`~simsearch.server.state.ServerState` (the index and its encoder, opened once).
"""
