"""Banks of known-content signals: model, hash-list formats, imports."""
