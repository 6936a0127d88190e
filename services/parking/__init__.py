"""Shared parking (共享停车): residents lend spots, neighbours and visitors book them, gates match plates."""
