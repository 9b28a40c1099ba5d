"""The cloud's half of sync: replicated tables, the write API for domain code, push/pull endpoints."""
