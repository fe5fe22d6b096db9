"""Glue between ARI and the pure cores: per-call sessions, agent legs and bridges, reconcile."""
