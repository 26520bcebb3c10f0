"""Benchmarks (issue 6): each measures real service processes from the outside and returns result rows."""
