"""The desktop shell: hidden Tk root with the dialogs, the tray icon, and their composition.

Only :func:`app.ui.desktop.run_desktop` reaches the network side (service, notifier), and only from
inside the coroutine that runs on the loop thread.
"""
