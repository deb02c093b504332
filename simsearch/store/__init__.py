"""Store stage: embeddings in FAISS, beat metadata in the catalog, one index directory on disk."""
