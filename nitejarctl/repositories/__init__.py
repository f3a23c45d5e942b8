"""Queries and changes, one module per table (named as nitejar's repositories).

Functions take an open database and explicit arguments and return rows,
iterators of rows or small dataclasses. They never print and know nothing of
Click or Rich.
"""
