"""The Celery side of trailpipe: the app, thin tasks over ``pipeline``, the beat schedule, the CLI."""
