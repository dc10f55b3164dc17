"""The function-calling playground's logic: a safe toolbox, tool definitions, the call loop."""
