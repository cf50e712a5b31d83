"""Data: the record schema, tokenizer, transforms, datasets and the data sources (notebooks 01, 02, 12)."""
