"""The synthetic system: seeded entities and events at any scale, with a leakage canary."""
