"""The spec front end: loading, the pydantic models, the JSON Schema. Never imports torch."""
