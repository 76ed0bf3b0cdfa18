"""Audience segmentation: turns an approved notice into delivery batches."""
