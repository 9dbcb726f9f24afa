"""Server-side sessions: the state (`session`), its store, its transport."""
