"""The web console (workers/web.py runs it): live status, history, settings and actions in a browser."""
