"""Governance points (积分换服务 / 服务换积分): residents earn points for taking part and spend them on services."""
