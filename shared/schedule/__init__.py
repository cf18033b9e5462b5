"""The clock: every time the bridge decides (the first and next poll, the Retry-After shown to callers, the
transient backoff, the deadline, a new operation's learned plan) and the duration history the plans learn from.
Start at clock.py: it is the front door, and the other modules are behind it."""
