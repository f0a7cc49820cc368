"""The HTTP API (Litestar): app factory, controllers, auth, error map."""
