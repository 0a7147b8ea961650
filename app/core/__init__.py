"""The loop thread's world."""
