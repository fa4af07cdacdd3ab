"""Billing read models: metered usage, the double-entry ledger, statements."""
