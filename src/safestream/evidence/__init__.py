"""Evidence custody: encrypted evidence store, preservation holds, hash-chained audit."""
