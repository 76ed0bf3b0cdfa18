"""Delivery receipts: provider delivery reports turn sent receipts into delivered or undelivered."""
