"""Helpers every layer may use: atomic files, modes, Hub access, old import paths. Imports nothing above it."""
