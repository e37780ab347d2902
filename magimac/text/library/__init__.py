"""Libraries: folders of documents indexed once into SQLite (FTS5 and vectors) and searched by
words and by meaning (`store`, `index`, `search`, `embedding`, `context`)."""
