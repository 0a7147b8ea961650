"""The tray menu as a small window, for desktops where the tray cannot show one.

pystray's xorg backend has no menu, and a desktop without a tray host shows no icon at all; the
same entries (:func:`app.ui.menu.menu_entries`) then live here: the status line, one button per
action, a check box for "Start at login", a drop-down button per submenu (pause, organisations),
and the reason the menu is missing. Tk thread only.
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Literal, cast

from app.constants import APP_NAME
from app.ui.dialogs import WINDOW_CLASS, Corner, bring_forward
from app.ui.menu import Action, Command, MenuEntry, MenuLine, TrayView

logger = logging.getLogger(__name__)

MENU_TITLE = APP_NAME
CORNER_RANK = 1  # above the dialogs: those belong next to the tray
HINT_WRAP = 280


class MenuWindow:
    """Shows a :class:`TrayView` as buttons; a click calls ``on_command`` (Tk thread)."""

    def __init__(self, root: tk.Tk, corner: Corner, on_command: Callable[[Action], None]):
        self._root = root
        self._corner = corner
        self._on_command = on_command
        self._window: tk.Toplevel | None = None
        self._widgets: list[tuple[MenuLine, tk.Widget]] = []
        self._status: ttk.Label
        self._hint: ttk.Label
        self._checks: dict[Action, ttk.Checkbutton] = {}
        self._minimise_on_close = False

    @property
    def visible(self) -> bool:
        return self._window is not None and self._window.winfo_ismapped()

    def show(
        self,
        view: TrayView,
        *,
        problem: str | None,
        focus: bool,
        minimise_on_close: bool = False,
    ) -> None:
        """Open (or bring forward) the window. ``focus`` only when the user asked for it: shown
        by the app itself, it must not take the keyboard from the login dialog.
        ``minimise_on_close``: without a tray icon this window is the only way back in, so the
        close box minimises it instead of hiding it."""
        self._minimise_on_close = minimise_on_close
        if self._window is None or len(self._widgets) != len(view.menu):
            self._build(view)
        assert self._window is not None
        self._hint.configure(text=problem or "")
        if problem:
            self._hint.grid()
        else:
            self._hint.grid_remove()
        self.update(view)
        self._corner.place(self._window, rank=CORNER_RANK)
        bring_forward(self._window, self._first_button(), "Menu window ready", focus=focus)

    def update(self, view: TrayView) -> None:
        """Follow the tray's state while the window exists (shown or minimised)."""
        if self._window is None:
            return
        if len(self._widgets) != len(view.menu):
            self._build(view)
        self._widgets = [
            (line, widget) for line, (_old, widget) in zip(view.menu, self._widgets, strict=True)
        ]
        for line, widget in self._widgets:
            self._apply(line, widget)
        if self._window.state() == "normal":  # a hidden window keeps no place in the corner
            self._corner.place(self._window, rank=CORNER_RANK)

    def hide(self) -> None:
        if self._window is None:
            return
        if self._minimise_on_close:
            self._window.iconify()
        else:
            self._window.withdraw()
            self._corner.remove(self._window)

    def close(self) -> None:
        window, self._window = self._window, None
        self._widgets = []
        if window is not None:
            window.destroy()
            self._corner.remove(window)
        self._checks = {}

    # -- inside ----------------------------------------------------------------------------

    def _build(self, view: TrayView) -> None:
        self.close()
        window = tk.Toplevel(self._root, class_=WINDOW_CLASS)
        window.withdraw()
        window.title(MENU_TITLE)
        window.resizable(False, False)
        frame = ttk.Frame(window, padding=(14, 12, 14, 12))
        frame.pack(fill=tk.BOTH, expand=True)
        frame.columnconfigure(0, weight=1)
        self._hint = ttk.Label(frame, text="", style="Hint.TLabel", wraplength=HINT_WRAP)
        row = 0
        for line in view.menu:
            widget = self._widget(frame, line)
            widget.grid(row=row, column=0, sticky="ew", pady=(0, 2))
            self._widgets.append((line, widget))
            row += 1
            if row == 1:  # the status line: the reason for this window goes right below it
                self._hint.grid(row=row, column=0, sticky="w", pady=(2, 6))
                row += 1
        window.bind("<Escape>", lambda _event: self.hide())
        window.bind("<Down>", lambda _event: self._move_focus(forward=True))
        window.bind("<Up>", lambda _event: self._move_focus(forward=False))
        window.bind("<FocusIn>", self._focused)
        window.protocol("WM_DELETE_WINDOW", self.hide)
        self._window = window

    def _widget(self, frame: ttk.Frame, line: MenuLine) -> tk.Widget:
        if not isinstance(line, MenuEntry):
            return ttk.Separator(frame, orient=tk.HORIZONTAL)
        if line.submenu is not None:
            button = ttk.Menubutton(frame, text=line.label)
            button["menu"] = tk.Menu(button, tearoff=False)
            return button
        command = line.command
        if command is None:
            return ttk.Label(frame, text=line.label, style="Heading.TLabel")
        if line.checked is not None:
            # No tkinter Variable: one freed later on another thread would call Tcl from there.
            # The check box keeps its value in the Tcl variable named after itself.
            check = ttk.Checkbutton(frame, text=line.label, command=lambda: self._clicked(command))
            self._checks[command] = check
            widget: ttk.Widget = check
        else:
            widget = ttk.Button(frame, text=line.label, command=lambda: self._clicked(command))
        for key in ("<Return>", "<KP_Enter>"):
            widget.bind(key, lambda _event, w=widget: w.invoke())
        return widget

    def _apply(self, line: MenuLine, widget: tk.Widget) -> None:
        if isinstance(line, MenuEntry):
            if isinstance(widget, ttk.Label | ttk.Button | ttk.Checkbutton | ttk.Menubutton):
                widget.configure(text=line.label)
            if isinstance(widget, ttk.Button | ttk.Checkbutton | ttk.Menubutton):
                widget.state(["!disabled"] if line.enabled else ["disabled"])
            if isinstance(widget, ttk.Menubutton):
                self._fill(widget, line.submenu or ())
            if line.command in self._checks:
                check = self._checks[line.command]
                check.setvar(str(check.cget("variable")), "1" if line.checked else "0")
            if not line.visible:
                widget.grid_remove()
                return
        widget.grid()

    def _fill(self, button: ttk.Menubutton, entries: tuple[MenuEntry, ...]) -> None:
        """The drop-down's items, rebuilt from the view: check items keep their state in a Tcl
        variable named after the menu (no tkinter Variable, as above)."""
        menu = button.nametowidget(str(button.cget("menu")))
        assert isinstance(menu, tk.Menu)
        menu.delete(0, tk.END)
        for index, entry in enumerate(entries):
            action = entry.command
            if action is None or not entry.visible:
                continue
            state: Literal["normal", "disabled"] = "normal" if entry.enabled else "disabled"
            if entry.checked is None:
                menu.add_command(label=entry.label, state=state, command=self._invoker(action))
                continue
            variable = f"{menu}.check{index}"
            menu.setvar(variable, "1" if entry.checked else "0")
            menu.add_checkbutton(
                label=entry.label,
                state=state,
                variable=cast(tk.Variable, variable),  # Tk takes the variable's name
                command=self._invoker(action),
            )

    def _invoker(self, action: Action) -> Callable[[], None]:
        return lambda: self._clicked(action)

    def _clicked(self, command: Action) -> None:
        logger.info("Menu window: %s", command)
        if command is not Command.EXIT and not self._minimise_on_close:
            self.hide()  # like a menu: it goes away once something is picked
        self._on_command(command)

    def _first_button(self) -> tk.Misc:
        for line, widget in self._widgets:
            if isinstance(line, MenuEntry) and line.command and line.visible and line.enabled:
                return widget
        assert self._window is not None
        return self._window

    def _focused(self, event: tk.Event[tk.Misc]) -> None:
        """The window itself got the focus (a click on it, the window manager): hand it to the
        first entry, as a menu does, so the keyboard works at once."""
        if event.widget is self._window:
            self._first_button().focus_set()

    def _move_focus(self, *, forward: bool) -> None:
        assert self._window is not None
        focused = self._window.focus_get() or self._first_button()
        target = focused.tk_focusNext() if forward else focused.tk_focusPrev()
        if target is not None:
            target.focus_set()
