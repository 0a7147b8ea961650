"""The OS around us."""
