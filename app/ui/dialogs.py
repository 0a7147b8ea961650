"""The login dialog, short message windows (info or error), and the corner they share.

Plain Tk with themed ttk widgets, created and used on the Tk thread only. Windows open at the
bottom-right corner of the screen, next to the tray, above the taskbar, and stay on top: a tray
app has no main window to bring them forward. The dialogs hold no state beyond their widgets;
the password lives in the entry until it is handed to ``on_submit`` and is wiped on close.
"""

from __future__ import annotations

import itertools
import logging
import re
import sys
import tkinter as tk
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from tkinter import font as tkfont
from tkinter import ttk

from app.constants import APP_NAME
from app.system import winapi
from app.ui.icons import app_icon_path

logger = logging.getLogger(__name__)

LOGIN_TITLE = f"{APP_NAME} - Login"
#: WM_CLASS of every window: how window managers group them and match them to the .desktop file.
WINDOW_CLASS = "TelexStart"
EDGE_MARGIN = 12  # pixels between a window and the screen edge / taskbar
# Where the work area is not known (X11, macOS), leave room for a bottom panel / the Dock.
BOTTOM_RESERVE = {"darwin": 90}.get(sys.platform, 48)
WRAP = 360  # message width in pixels
FOCUS_DELAY_MS = 100  # a window must be mapped before it can take the focus
ERROR_RED = "#B91C1C"
HINT_GREY = "#4B5563"

_EMAIL = re.compile(
    r"^[^@\s]+@"  # local part: anything but spaces and @ (quoted forms are not worth it)
    r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+"  # domain labels, Unicode letters allowed (IDN)
    r"[^\W\d_][\w-]*[^\W_]$"  # top-level domain: starts with a letter
)
EMAIL_MAX = 254


def is_valid_email(email: str) -> bool:
    return len(email) <= EMAIL_MAX and _EMAIL.fullmatch(email) is not None


def credentials_problem(email: str, password: str) -> str | None:
    """Why the form cannot be sent yet, in words for the user; None when it can."""
    if not email:
        return "Enter your email address."
    if not is_valid_email(email):
        return f"“{email}” is not a valid email address."
    if not password:
        return "Enter your password."
    return None


def apply_theme(root: tk.Tk) -> None:
    """The native ttk theme where there is one, clam on X11; shared label styles; the window
    icon for every dialog (Tk copies the image, so it need not be kept)."""
    style = ttk.Style(root)
    preferred = {"win32": "vista", "darwin": "aqua"}.get(sys.platform, "clam")
    if preferred in style.theme_names():
        style.theme_use(preferred)
    base = tkfont.nametofont("TkDefaultFont").actual()
    heading = (base["family"], int(base["size"]) + 2, "bold")
    style.configure("Heading.TLabel", font=heading)
    style.configure("Hint.TLabel", foreground=HINT_GREY)
    style.configure("Error.TLabel", foreground=ERROR_RED)
    # Ctrl+A selects all, as everywhere else (Tk's X11 default moves to the line start).
    root.bind_class("TEntry", "<Control-a>", _select_all)
    icon_file = app_icon_path()
    if icon_file.is_file():
        root.iconphoto(True, tk.PhotoImage(master=root, file=str(icon_file)))


def _select_all(event: tk.Event[tk.Misc]) -> str:
    entry = event.widget
    if isinstance(entry, ttk.Entry):
        entry.selection_range(0, tk.END)
        entry.icursor(tk.END)
    return "break"


CHOOSE_PROGRAM_TITLE = "Where is Telex?"


def ask_for_program(parent: tk.Misc) -> Path | None:
    """Tk's file chooser for the main app (an ``.exe`` on Windows, an ``.app`` on macOS)."""
    from tkinter import filedialog

    kinds = {"win32": [("Programs", "*.exe")], "darwin": [("Applications", "*.app")]}
    try:
        name = filedialog.askopenfilename(
            parent=parent,
            title=CHOOSE_PROGRAM_TITLE,
            initialdir=Path.home(),
            filetypes=[*kinds.get(sys.platform, []), ("All files", "*")],
        )
    except tk.TclError:  # the app exited while the chooser was open
        return None
    return Path(name) if name else None


class Corner:
    """The bottom-right corner of the work area, next to the tray, shared by every window of the
    app: windows stack upwards from it, dialogs nearest the corner and the menu window above
    them, so none hides another (Tk thread)."""

    def __init__(self) -> None:
        self._windows: list[tuple[int, int, tk.Toplevel]] = []  # (rank, opened, window)
        self._opened = itertools.count()

    def place(self, window: tk.Toplevel, *, rank: int = 0) -> None:
        """Put ``window`` in the stack (or re-place it after its size changed)."""
        if not any(entry[2] is window for entry in self._windows):
            self._windows.append((rank, next(self._opened), window))
        self._restack()

    def remove(self, window: tk.Toplevel) -> None:
        self._windows = [entry for entry in self._windows if entry[2] is not window]
        self._restack()

    def _restack(self) -> None:
        self._windows = [entry for entry in self._windows if entry[2].winfo_exists()]
        bottom: int | None = None
        for _rank, _opened, window in sorted(self._windows, key=lambda entry: entry[:2]):
            window.update_idletasks()
            width, height = window.winfo_reqwidth(), window.winfo_reqheight()
            right, corner_bottom = _work_area_corner(window)
            bottom = corner_bottom if bottom is None else bottom
            x = max(0, right - width - EDGE_MARGIN)
            y = max(0, bottom - height - EDGE_MARGIN)
            window.geometry(f"{width}x{height}+{x}+{y}")
            bottom = y


def _work_area_corner(window: tk.Misc) -> tuple[int, int]:
    """Bottom-right corner of the usable screen: Windows knows where its taskbar is."""
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        rect = wintypes.RECT()
        spi_getworkarea = 0x0030
        if winapi.function("SystemParametersInfoW")(spi_getworkarea, 0, ctypes.byref(rect), 0):
            return rect.right, rect.bottom
    return window.winfo_screenwidth(), window.winfo_screenheight() - BOTTOM_RESERVE


def bring_forward(
    window: tk.Toplevel, entry: tk.Misc, ready_log: str, *, focus: bool = True
) -> None:
    """On top while it opens (and focused, only when the user asked for it): a tray app's
    window must not open behind the others, nor take the keyboard from what the user is typing
    into, nor cover the browser or password manager they switch to afterwards: so ``-topmost``
    goes once the window is mapped."""
    window.deiconify()
    window.attributes("-topmost", True)
    window.lift()

    def ready() -> None:
        if window.winfo_exists():
            window.attributes("-topmost", False)
            if focus:
                window.focus_force()
            # Unfocused, Tk only remembers it: the keyboard lands there once the user comes.
            entry.focus_set()
            logger.info(ready_log)

    window.after(FOCUS_DELAY_MS, ready)


class LoginDialog:
    """Email + password, validated before they are sent; busy while the service signs in.

    ``on_submit(email, password)`` is called once per valid submission; the dialog then stays
    busy until :meth:`failed` or :meth:`close`. ``on_cancel`` is called after the dialog has
    closed itself (Cancel, Escape, the close box), also while busy.
    """

    def __init__(
        self,
        root: tk.Tk,
        corner: Corner,
        *,
        on_submit: Callable[[str, str], None],
        on_cancel: Callable[[], None],
    ) -> None:
        self._root = root
        self._corner = corner
        self._on_submit = on_submit
        self._on_cancel = on_cancel
        self._window: tk.Toplevel | None = None
        self._email: ttk.Entry
        self._password: ttk.Entry
        self._message: ttk.Label
        self._login: ttk.Button
        self._cancel_button: ttk.Button
        self._busy = False

    def open(
        self,
        *,
        email: str = "",
        password: str = "",
        message: str | None = None,
        focus: bool = True,
    ) -> None:
        """Show the dialog (or bring the open one forward) with these fields and message;
        ``focus`` only when the user asked for it (the menu, a second launch)."""
        if self._window is None:
            self._build()
        if self._busy:
            return
        assert self._window is not None
        if email:
            _replace_text(self._email, email)
        if password:
            _replace_text(self._password, password)
        self._show_message(message or "", error=False)
        target = self._password if self._email.get() else self._email
        bring_forward(self._window, target, "Login dialog ready", focus=focus)

    def failed(self, message: str, *, keep_password: bool = False) -> None:
        """Sign-in did not work: show why, keep the email; empty the password field unless
        ``keep_password`` (the network or the server failed, not the password)."""
        if self._window is None:
            return
        self._set_busy(False)
        if not keep_password:
            self._password.delete(0, tk.END)
        self._show_message(message, error=True)
        logger.info("Login dialog shows the error: %s", message)
        bring_forward(self._window, self._password, "Login dialog ready")

    def close(self) -> None:
        window, self._window = self._window, None
        self._busy = False
        if window is not None:
            self._password.delete(0, tk.END)
            window.destroy()
            self._corner.remove(window)

    # -- inside ----------------------------------------------------------------------------

    def _build(self) -> None:
        window = tk.Toplevel(self._root, class_=WINDOW_CLASS)
        window.withdraw()  # placed first, shown after: no flash at the top-left corner
        window.title(LOGIN_TITLE)
        window.resizable(False, False)
        frame = ttk.Frame(window, padding=(18, 16, 18, 14))
        frame.pack(fill=tk.BOTH, expand=True)
        frame.columnconfigure(1, weight=1)

        ttk.Label(frame, text="Sign in to Telex", style="Heading.TLabel").grid(
            row=0, column=0, columnspan=2, sticky="w"
        )
        ttk.Label(
            frame,
            text="Get notified about new messages, even while Telex is closed.",
            style="Hint.TLabel",
            wraplength=WRAP,
        ).grid(row=1, column=0, columnspan=2, sticky="w", pady=(2, 12))
        ttk.Label(frame, text="Email").grid(row=2, column=0, sticky="w", padx=(0, 10))
        self._email = ttk.Entry(frame, width=34)
        self._email.grid(row=2, column=1, sticky="ew", pady=3)
        ttk.Label(frame, text="Password").grid(row=3, column=0, sticky="w", padx=(0, 10))
        self._password = ttk.Entry(frame, width=34, show="•")
        self._password.grid(row=3, column=1, sticky="ew", pady=3)
        self._message = ttk.Label(frame, text="", wraplength=WRAP, justify=tk.LEFT)
        self._message.grid(row=4, column=0, columnspan=2, sticky="w", pady=(6, 0))

        buttons = ttk.Frame(frame)
        buttons.grid(row=5, column=0, columnspan=2, sticky="e", pady=(10, 0))
        self._cancel_button = ttk.Button(buttons, text="Cancel", command=self._cancel)
        self._cancel_button.pack(side=tk.RIGHT)
        self._login = ttk.Button(buttons, text="Login", command=self._submit, default="active")
        self._login.pack(side=tk.RIGHT, padx=(0, 8))

        window.bind("<Return>", self._on_return)
        window.bind("<KP_Enter>", self._on_return)
        window.bind("<Escape>", lambda _event: self._cancel())
        window.protocol("WM_DELETE_WINDOW", self._cancel)
        self._window = window

    def _on_return(self, _event: tk.Event[tk.Misc]) -> None:
        if self._window is not None and self._window.focus_get() is self._cancel_button:
            self._cancel()
        else:
            self._submit()

    def _submit(self) -> None:
        if self._busy or self._window is None:
            return  # one sign-in at a time
        email = self._email.get().strip()
        password = self._password.get()
        problem = credentials_problem(email, password)
        if problem is not None:
            self._show_message(problem, error=True)
            (self._password if email and is_valid_email(email) else self._email).focus_set()
            return
        self._set_busy(True)
        self._show_message("Signing in…", error=False)
        self._on_submit(email, password)

    def _cancel(self) -> None:
        self.close()
        self._on_cancel()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        flag = ["disabled"] if busy else ["!disabled"]
        for widget in (self._email, self._password, self._login):
            widget.state(flag)
        self._login.configure(text="Signing in…" if busy else "Login")
        if self._window is not None:
            self._window.configure(cursor="watch" if busy else "")

    def _show_message(self, text: str, *, error: bool) -> None:
        self._message.configure(text=text, style="Error.TLabel" if error else "Hint.TLabel")
        if text:
            self._message.grid()
        else:
            self._message.grid_remove()  # no empty gap above the buttons
        if self._window is not None:
            self._corner.place(self._window)  # the message may add lines: stay in the corner


def _replace_text(entry: ttk.Entry, text: str) -> None:
    entry.delete(0, tk.END)
    entry.insert(0, text)


class MessageKind(Enum):
    INFO = "::tk::icons::information"
    ERROR = "::tk::icons::error"


@dataclass(frozen=True)
class MessageAction:
    """An extra button of a message window. ``run`` gets the window, still open, as the parent
    of any dialog it opens (a dialog of the hidden root would stay hidden); the window closes
    when ``run`` returns, unless ``run`` showed a new message in it."""

    label: str
    run: Callable[[tk.Toplevel], None]


class MessageWindow:
    """One short message at a time (a newer one replaces it); OK or Escape close it, Return
    presses the focused button."""

    def __init__(self, root: tk.Tk, corner: Corner, kind: MessageKind) -> None:
        self._root = root
        self._corner = corner
        self._kind = kind
        self._window: tk.Toplevel | None = None

    @property
    def showing(self) -> str | None:
        """The title on screen, if any."""
        return None if self._window is None else str(self._window.title())

    def show(
        self,
        title: str,
        message: str,
        *,
        close_after_ms: int | None = None,
        actions: Sequence[MessageAction] = (),
    ) -> None:
        self.close()
        window = tk.Toplevel(self._root, class_=WINDOW_CLASS)
        window.withdraw()
        window.title(f"{APP_NAME} - {title}")
        window.resizable(False, False)
        frame = ttk.Frame(window, padding=(16, 16, 16, 12))
        frame.pack(fill=tk.BOTH, expand=True)
        ttk.Label(frame, image=self._kind.value).grid(
            row=0, column=0, rowspan=2, sticky="n", padx=(0, 12)
        )
        ttk.Label(frame, text=title, style="Heading.TLabel").grid(row=0, column=1, sticky="w")
        ttk.Label(frame, text=message, wraplength=WRAP, justify=tk.LEFT).grid(
            row=1, column=1, sticky="w", pady=(4, 0)
        )
        buttons = ttk.Frame(frame)
        buttons.grid(row=2, column=0, columnspan=2, sticky="e", pady=(14, 0))
        ok = ttk.Button(buttons, text="OK", command=self.close)
        ok.pack(side=tk.RIGHT)
        first = ok  # the leftmost button gets the focus: an action when there is one
        for action in reversed(actions):
            first = ttk.Button(buttons, text=action.label, command=partial(self._run, action.run))
            first.pack(side=tk.RIGHT, padx=(0, 8))
        first.configure(default="active")
        for key in ("<Return>", "<KP_Enter>"):
            window.bind(key, lambda _event: self._press_focused(window, ok))
        window.bind("<Escape>", lambda _event: self.close())
        window.protocol("WM_DELETE_WINDOW", self.close)
        self._window = window
        self._corner.place(window)
        bring_forward(window, first, f"Message shown: {title}")
        if close_after_ms is not None:
            window.after(close_after_ms, lambda: self._close_if(window))

    def close(self) -> None:
        window, self._window = self._window, None
        if window is not None:
            window.destroy()
            self._corner.remove(window)

    def wait(self) -> None:
        """Block (running Tk events) until the user has closed the message."""
        if self._window is not None:
            self._root.wait_window(self._window)

    def _run(self, action: Callable[[tk.Toplevel], None]) -> None:
        window = self._window
        if window is None:
            return
        window.attributes("-topmost", False)  # the dialog it opens goes on top of it
        action(window)
        if self._window is window:
            self.close()

    @staticmethod
    def _press_focused(window: tk.Toplevel, default: ttk.Button) -> None:
        focused = window.focus_get()
        (focused if isinstance(focused, ttk.Button) else default).invoke()

    def _close_if(self, window: tk.Toplevel) -> None:
        if self._window is window:
            self.close()
