"""Presets: small YAML files naming a model and how to run it, validated by `schema.Preset`."""
