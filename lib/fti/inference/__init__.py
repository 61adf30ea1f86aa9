"""The inference pipeline: batch scoring into a Delta prediction table, lineage and monitoring."""
