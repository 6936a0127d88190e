"""The gateway: one door for resident apps, staff dashboards and city sync clients.

It issues and checks tokens, routes `/api/<service>/...` to the four services, protects them
(rate limits, body limits, idempotency, circuit breakers) and publishes one merged OpenAPI
document. It holds no domain rule: the services decide what a caller may do with an object.
"""
