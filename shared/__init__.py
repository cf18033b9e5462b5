"""Excel Async Bridge: the function app's own code, a package per concept (docs/design.md, "Pieces").

Imports run one way: function_app.py (entry points) -> use cases -> decisions -> adapters -> records and
helpers; tools/imports.py holds each module's layer and tests/unit/test_dependency_direction.py enforces it."""
