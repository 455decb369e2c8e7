"""The ledger's business rules: aggregates, money and errors. Imports nothing of ours."""
