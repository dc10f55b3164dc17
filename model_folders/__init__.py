"""Model folders as files: what one says of itself, and where the console keeps the models it converts."""
