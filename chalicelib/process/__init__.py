"""What one process holds and every layer uses: its settings, its clients, executor and caches (runtime), its logs
and metrics (observability), each event's context (request id, log keys, time budget), and the dev server's
start-up hooks."""
