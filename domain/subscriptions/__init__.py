"""Event subscriptions for external integrations: webhooks."""
