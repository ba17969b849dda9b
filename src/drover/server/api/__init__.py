"""The REST API (FastAPI): routes per concern, response schemas, and the app factory."""
