"""Local stand-ins for Telex and its push server, for --demo and tests (not frozen)."""
