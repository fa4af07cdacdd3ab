"""Webhook delivery: signing, safe targets, the HTTP sender and the dispatcher loop."""
