"""The OS around the app: the Telex main app, the login item, the one-instance lock, and the
typed declarations of the C functions called directly. Calls here may block: the desktop mode
makes them off the Tk thread."""
