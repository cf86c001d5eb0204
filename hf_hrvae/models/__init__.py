"""The models of the package, one folder each, as transformers lays them out (`transformers/models/<name>/`)."""
