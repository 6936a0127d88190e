"""The service kit: what every service needs the same way, and no domain rule.

Settings, the database session, the CloudEvents envelope, the transactional outbox and its relay,
the idempotent inbox consumer, problem+json errors, token verification, telemetry, health checks.
"""
