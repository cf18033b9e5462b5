"""Traces and metrics (OpenTelemetry): the tracer, the meter and every `bridge.*` instrument."""
