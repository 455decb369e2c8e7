"""Read-model builders and their queries."""
