"""What the webhook dispatcher needs to know about each webhook, as tables."""
