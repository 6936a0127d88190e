"""Property: the "platform + steward" (平台+管家) service, and the community registry it owns."""
