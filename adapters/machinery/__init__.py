"""Generic machinery the adapters build on; it knows nothing of Keel."""
