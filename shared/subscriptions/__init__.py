"""Owner-scoped subscriptions ("an operation of mine finished"): the records, the request rules, the table
entities and the HTTP use cases."""
