"""The HTTP API's surface: who is calling, RFC 9457 problem details, how answers are formatted, and the OpenAPI
document that describes every route."""
