"""Keel's domain: entities, rules, errors and ports. Standard library only."""
