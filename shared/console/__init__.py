"""The operations console: its static page (static/), the files it may be served, and the extra read it makes
(the caller's duration history)."""
