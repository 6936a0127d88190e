"""The platform's services: each a FastAPI app with its own database and topic."""
