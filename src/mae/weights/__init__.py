"""Weights in every layout: our format, loading any layout, inferring settings, export, key maps, the Hub."""
