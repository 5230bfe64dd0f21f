"""Replicated desired state: pycrdt documents, validated schema, durable store."""
