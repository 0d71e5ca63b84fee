"""Datasets: read, detect the format, render with the chat template, mask, inspect."""
