"""Prices per model, token estimates, and the cost reports; the shipped price table
(prices.json) is package data.

Imports: core, access (reports), history.filters (reports).
"""
