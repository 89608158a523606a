"""What tests share: context builders, daemon runners, waiting for a condition.

Tests import from here, never from each other.
"""
