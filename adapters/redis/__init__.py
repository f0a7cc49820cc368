"""Redis adapters: client construction (cache, queue and event bus come later)."""
