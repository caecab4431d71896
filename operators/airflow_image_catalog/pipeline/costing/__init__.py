"""Costing: prices and estimates before any money is spent, the cost decision and the ledger after."""
