"""Use cases over the domain's ports; one public `execute` per use case."""
