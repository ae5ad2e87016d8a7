"""trailpipe's domain: config, S3 listing, discovery, state, parsing, emitting.

Nothing in this package imports Celery: the tasks in ``workers/`` are thin shells over
the plain functions here, so tests can call them directly.
"""
