"""Queries. Each function takes a Session and never commits: the calling service does."""
