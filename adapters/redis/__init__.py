"""Redis adapters: the client, the cache, the BullMQ queue, the event bus, stream
tickets and slots, UI state, dead letters."""
