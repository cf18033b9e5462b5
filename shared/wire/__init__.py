"""What crosses the wire, however it is used: strict JSON, a URL's origin and Retry-After."""
