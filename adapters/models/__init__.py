"""Language-model providers: an OpenAI-compatible one and an offline simulation."""
