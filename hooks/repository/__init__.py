"""SQL of the integration edge: the inbox and the outbox's delivery state."""
