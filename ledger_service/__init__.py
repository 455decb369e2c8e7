"""Event-sourced prepaid-wallet ledger for a messaging platform."""
