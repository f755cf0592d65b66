"""A session: the models stepped together, and what is kept of it (exports)."""
