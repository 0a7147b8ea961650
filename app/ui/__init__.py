"""The desktop front-end: the hidden Tk root with its dialogs, the tray icon, and the pure model
they both show. It never imports :mod:`app.core` or :mod:`app.notify`: the loop side reaches it
only as the runtime :mod:`app.cli` hands to :func:`app.ui.run.run_desktop`, through
:class:`~app.ui.desktop.ServiceApi`."""
