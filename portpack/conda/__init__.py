"""The conda package format: tar streams, info/, package files."""
