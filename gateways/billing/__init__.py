"""Billing adapters: statement documents rendered by libraries."""
