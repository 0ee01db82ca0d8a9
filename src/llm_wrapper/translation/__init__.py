"""Translations between the wire formats clients speak and the ones providers speak."""
