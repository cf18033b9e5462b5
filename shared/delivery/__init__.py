"""Telling callers an operation ended: operation webhooks and subscription fan-outs, the retry policy, the
claims that keep one POST per attempt, the CloudEvents bodies, the Standard Webhooks signatures and where a
webhook may go (SSRF rules)."""
