"""Billing: price books, metering, rating into charges, and each tenant's account."""
