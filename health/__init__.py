"""Health: the status file, the healthy/unhealthy verdict, process metrics."""
