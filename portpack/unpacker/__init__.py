"""Orchestration of an unpack: preconditions, the portpack and pixi-pack unpackers."""
