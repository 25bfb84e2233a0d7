"""Measuring strength: labelled positions, matches between players, ratings, records and plots."""
