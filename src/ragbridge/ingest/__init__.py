"""Documents in: load, split, embed, upsert."""
