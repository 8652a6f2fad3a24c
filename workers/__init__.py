"""One module per worker process; each exposes ``run(worker)``."""
