"""Whole-project operations used by the CLI: create a project, diagnose it, run the demo.

Each function returns data (a report dataclass); the CLI decides how to show it.
"""
