"""Presets side by side: switch, warm up, measure, switch on; then one table and its exports."""
