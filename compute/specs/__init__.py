"""The tables the web server reads, as plain data without torch: parameter specs and menus of every family, the
model-and-data source, and the lane each job runs in. The compute process reads the same tables; each entry names
its implementation by import path, imported only where it runs.
"""
