"""Dripline: timed contact pipelines on AWS serverless.

Everything the Lambda functions share lives in this package (the common layer):
settings, clock, storage, the pure step engine, actions, enrollment, processing and
the HTTP API routes. Handlers under functions/ are thin wrappers around it.
"""
