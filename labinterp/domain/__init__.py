"""The pure clinical engine: units, reference intervals, grading, findings, red flags.

No Flask, Celery, SQLAlchemy or marshmallow import is allowed below this package; the clock
and the ruleset are always arguments.
"""
