"""fblegacy: a Flower app on the legacy API, for fedbox's tests."""
