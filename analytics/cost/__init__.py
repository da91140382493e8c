"""Prices per model and the cost reports; the shipped price table (prices.json) is package data.

Imports: core, access, history.
"""
