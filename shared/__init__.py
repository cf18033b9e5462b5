"""Excel Async Bridge: the function app's own package (settings, Graph client, polling, store, webhooks)."""
