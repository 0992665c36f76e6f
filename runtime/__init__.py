"""runtime: an actor-style concurrent runtime for an operations assistant's tools."""
