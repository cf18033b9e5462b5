"""The action table: every Excel action the bridge starts, one module each (its parameters, its Graph request, its
result), read by request validation, the Graph start, the answer decisions and the OpenAPI document."""
