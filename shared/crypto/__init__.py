"""Keys and what they protect: AES-256-GCM sealing of callers' tokens and callback URLs, the signed status URLs'
HMAC, and the webhook signing keys. Nothing here does I/O."""
