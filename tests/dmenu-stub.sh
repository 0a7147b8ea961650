#!/bin/sh
# Non-interactive dmenu stand-in for dunst (`dmenu = ...` in tests/dunstrc), used by
# `dunstctl context`. dunst pipes one line per action: "#<label> (<summary>) [<id>,<action_key>]".
# If $DUNST_PICK_FILE is non-empty, print the first line containing that fixed string and empty
# the file (one pick per menu, and the test sees that its pick was consumed); otherwise print the
# first line. What dunst offered is logged to $DUNST_MENU_LOG.
# The variables must be in dunst's environment (tests/desktop-session.sh exports them).
pick_file=${DUNST_PICK_FILE:-/tmp/dunst-pick}
menu_log=${DUNST_MENU_LOG:-/tmp/dunst-menu.txt}
pick=
if [ -s "$pick_file" ]; then
    pick=$(cat "$pick_file")
    : >"$pick_file"
fi
if [ -n "$pick" ]; then
    tee "$menu_log" | grep -m1 -F -- "$pick"
else
    tee "$menu_log" | head -n1
fi
