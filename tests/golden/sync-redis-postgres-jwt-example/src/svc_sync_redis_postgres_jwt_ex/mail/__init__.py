"""Mail: the outbox that requests queue into, and the sender that delivers it."""
