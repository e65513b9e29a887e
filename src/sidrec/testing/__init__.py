"""Helpers for testing sidrec itself: malformed-input corpora."""
