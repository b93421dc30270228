"""The command line: wiring (click) over functions that return data.

``main`` holds the lazy root and maps errors to exit codes; each other module is one
command family, imported only when that family runs.
"""
