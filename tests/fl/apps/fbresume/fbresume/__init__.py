"""fbresume: a deterministic Flower app for fedbox's resume and chaos tests."""
