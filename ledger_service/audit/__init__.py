"""Audit tooling over the event history: verify, history, export."""
